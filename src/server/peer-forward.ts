import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import type { Egress } from '../http/egress.js';
import { describeError } from '../http/errors.js';
import { HOP_BY_HOP } from '../http/server-helpers.js';
import type { Logger } from '../observability/logger.js';
import { FORWARDED_BY_HEADER, type PeerRoute } from './peer-routing.js';
import { answerHeaders } from './platform-request.js';

/** Failures a peer reports before relaying anything: the request may go elsewhere. */
const NOT_RELAYED = new Set(['no-connection', 'connection-not-ready', 'server-draining']);

export type ForwardOutcome = 'answered' | 'unavailable';

/**
 * Sends one platform request to a peer server's /broker/ API (marked so the peer relays it
 * over its own tunnels only) and streams the peer's answer back. 'unavailable' means nothing
 * was relayed there (unreachable, or the peer had no usable tunnel) so another target may try.
 */
export async function forwardToPeer(
  peer: PeerRoute,
  req: IncomingMessage,
  res: ServerResponse,
  init: { rawUrl: string; body?: Buffer; requestId: string; selfServerId: string; timeoutMs: number },
  deps: { egress: Egress; logger: Logger },
): Promise<ForwardOutcome> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || k === 'host' || k === 'content-length') continue;
    headers[k] = v;
  }
  headers['snyk-request-id'] = init.requestId;
  headers[FORWARDED_BY_HEADER] = init.selfServerId;
  let answer;
  try {
    answer = await deps.egress.request(`${peer.peerUrl}${init.rawUrl}`, {
      method: (req.method ?? 'GET') as 'GET',
      headers,
      body: init.body,
      signal: AbortSignal.timeout(init.timeoutMs),
    });
  } catch (err) {
    deps.logger.warn({ requestId: init.requestId, peer: peer.serverId, error: describeError(err) }, 'peer server unreachable; trying another target');
    return 'unavailable';
  }
  const failure = answer.headers['x-broker-failure'];
  if ((answer.statusCode === 404 || answer.statusCode === 503) && typeof failure === 'string' && NOT_RELAYED.has(failure)) {
    await answer.body.dump().catch(() => undefined);
    deps.logger.debug({ requestId: init.requestId, peer: peer.serverId, failure }, 'peer server could not take the request; trying another target');
    return 'unavailable';
  }
  if (res.destroyed) {
    answer.body.destroy();
    return 'answered';
  }
  const out = answerHeaders(answer.headers as Record<string, unknown>);
  out['x-broker-served-by'] = peer.serverId;
  res.writeHead(answer.statusCode, out);
  await new Promise<void>((resolve) => {
    pipeline(answer.body, res, (err) => {
      if (err) deps.logger.warn({ requestId: init.requestId, peer: peer.serverId, error: describeError(err) }, 'answer from the peer server broke off');
      resolve();
    });
  });
  return 'answered';
}
