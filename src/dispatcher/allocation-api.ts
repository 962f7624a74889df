import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.js';
import { FAILURES } from '../protocol/failures.js';
import { CLIENT_INSTANCE_HEADER, parseClientInstance } from '../protocol/index.js';
import type { AllocationResult } from './allocation-policy.js';
import type { Allocator } from './allocator.js';
import { ApiError, methodNotAllowed, send } from './api-answers.js';
import { attributesOf, CLIENT_ID, hashedTokenSegment, readJson, segment } from './api-input.js';
import type { DispatcherMetrics } from './metrics.js';
import { tokenLabel } from './types.js';

export interface AllocationApiDeps {
  allocator: Allocator;
  metrics: DispatcherMetrics;
  logger: Logger;
}

/** The client-facing allocation API (protocol.md §6.2/6.5): `{prefix}/{hashedToken}/connections/{clientId}`. */
export class AllocationApi {
  #lastNoServerLog = -Infinity;

  constructor(readonly deps: AllocationApiDeps) {}

  async serve(req: IncomingMessage, res: ServerResponse, rawToken: string, rawClient: string): Promise<void> {
    const { allocator, metrics } = this.deps;
    const hashedToken = hashedTokenSegment(rawToken);
    const clientId = segment(rawClient, FAILURES.INVALID_CLIENT_ID, 'client id', CLIENT_ID);
    // Our client names its process (rolling updates run two with one id); Snyk's sends nothing.
    const instance = parseClientInstance(req.headers[CLIENT_INSTANCE_HEADER]);
    if (req.method === 'DELETE') {
      req.resume();
      if (await allocator.release(hashedToken, clientId, instance)) metrics.releases.inc();
      send(res, 204, undefined);
      return;
    }
    if (req.method !== 'POST') throw methodNotAllowed(['POST', 'DELETE']);
    const attrs = attributesOf(await readJson(req));
    const r = await allocator.allocate(hashedToken, clientId, instance);
    if (r.kind !== 'granted') throw this.#refused(r);
    metrics.allocations.inc({ result: r.created ? 'created' : r.moved ? 'moved' : 'renewed' });
    const attributes: Record<string, string> = { server_id: r.server.id };
    // Only a URL the server's operator published for clients: the internal peer URL may not
    // resolve from a client's network, or resolve to another host that would get the token.
    if (r.server.publicUrl) attributes.server_url = r.server.publicUrl;
    if (r.created) {
      this.deps.logger.debug({ tokenHash: tokenLabel(hashedToken), clientId, location: attrs.deployment_location }, 'new client');
    }
    send(res, r.created ? 201 : 200, { jsonapi: { version: '1.0' }, data: { id: clientId, type: 'broker_connection', attributes } });
  }

  /** The answer for a client that gets no server now, telling it when to ask again. */
  #refused(r: Exclude<AllocationResult, { kind: 'granted' }>): ApiError {
    this.deps.metrics.refusals.inc({ code: r.code });
    const retry = { 'retry-after': String(r.retryAfterSeconds) };
    if (r.kind === 'unavailable') {
      // Every waiting client hits this every few seconds: say it once per 30 s.
      if (Date.now() - this.#lastNoServerLog >= 30_000) {
        this.#lastNoServerLog = Date.now();
        this.deps.logger.warn('no live broker server: allocations are refused with 503 until a server registers or reports');
      }
      return new ApiError(FAILURES[r.code], 'No broker server available', 'no live broker server is registered with the dispatcher; retry later', retry);
    }
    if (r.code === 'WARMING_UP') {
      return new ApiError(FAILURES[r.code], 'Dispatcher warming up', 'the dispatcher just started and is collecting existing connections; retry later', retry);
    }
    return new ApiError(
      FAILURES[r.code],
      'Too many broker clients for this token',
      `token already has ${r.held} clients allocated (the maximum${r.held > r.max ? ` is ${r.max}` : ''}); retry later`,
      retry,
    );
  }
}
