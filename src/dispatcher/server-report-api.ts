import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.js';
import { FAILURES } from '../protocol/failures.js';
import { CLIENT_INSTANCE_QUERY, parseClientInstance } from '../protocol/index.js';
import type { Allocator } from './allocator.js';
import { ApiError, methodNotAllowed, send } from './api-answers.js';
import { attributesOf, CLIENT_ID, hashedTokenSegment, optionalHttpUrl, readJson } from './api-input.js';
import type { ConnectionEvent } from './connection-reports.js';
import type { DispatcherMetrics } from './metrics.js';
import { tokenLabel } from './types.js';

/** Answer header on a server report when the dispatcher wants that server to register again. */
export const REGISTER_HINT_HEADER = 'x-broker-dispatcher-register';

export interface ServerReportDeps {
  allocator: Allocator;
  metrics: DispatcherMetrics;
  logger: Logger;
}

/** The event a connection report names: DELETE disconnects, POST carries request_type. */
function reportEvent(req: IncomingMessage, query: URLSearchParams): ConnectionEvent {
  if (req.method === 'DELETE') return 'client-disconnected';
  if (req.method !== 'POST') throw methodNotAllowed(['POST', 'DELETE']);
  const type = query.get('request_type') ?? 'client-connected';
  if (type !== 'client-connected' && type !== 'client-pinged') {
    throw new ApiError(FAILURES.INVALID_REQUEST_TYPE, 'Invalid request_type', 'request_type must be client-connected or client-pinged');
  }
  return type;
}

/**
 * Our servers repeat peer_url in connection reports, so a dispatcher that restarted with an
 * empty store learns it again from ordinary reports; a body problem never fails a report.
 */
async function reportPeerUrl(req: IncomingMessage): Promise<string | undefined> {
  try {
    return optionalHttpUrl(attributesOf(await readJson(req)).peer_url, 'peer_url');
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    return undefined;
  }
}

/** `/internal/brokerservers/{serverId}/connections/{hashedToken}`: a server reports a client's tunnel (§6.4). */
export async function serveConnectionReport(
  d: ServerReportDeps,
  req: IncomingMessage,
  res: ServerResponse,
  serverId: string,
  rawToken: string,
  query: URLSearchParams,
): Promise<void> {
  const hashedToken = hashedTokenSegment(rawToken);
  const clientIdRaw = query.get('broker_client_id');
  if (!clientIdRaw) throw new ApiError(FAILURES.MISSING_CLIENT_ID, 'Missing broker_client_id', 'query parameter broker_client_id is required');
  if (!CLIENT_ID.test(clientIdRaw)) throw new ApiError(FAILURES.INVALID_CLIENT_ID, 'Invalid broker_client_id', `broker_client_id must match ${CLIENT_ID.source}`);
  const roleRaw = query.get('connection_role') ?? query.get('role') ?? undefined;
  const role = roleRaw && /^[A-Za-z0-9_-]{1,32}$/.test(roleRaw) ? roleRaw : undefined;
  const event = reportEvent(req, query);
  let peerUrl: string | undefined;
  if (event === 'client-disconnected') req.resume();
  else peerUrl = await reportPeerUrl(req);
  const instance = parseClientInstance(query.get(CLIENT_INSTANCE_QUERY) ?? undefined);
  const unregistered = await d.allocator.reportConnection(serverId, hashedToken, clientIdRaw, event, role, peerUrl, instance);
  d.metrics.serverReports.inc({ event });
  d.logger.debug({ serverId, tokenHash: tokenLabel(hashedToken), clientId: clientIdRaw, event, role }, 'server report');
  // A server we only know from reports is asked to register again (server-starting with
  // peer_url, then its open connections); the real server ignores the hint harmlessly.
  const hint: Record<string, string> = unregistered ? { [REGISTER_HINT_HEADER]: 'true' } : {};
  if (event === 'client-disconnected') send(res, 204, undefined, hint);
  else send(res, 200, { jsonapi: { version: '1.0' }, meta: { ok: true, register: unregistered } }, hint);
}
