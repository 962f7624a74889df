import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.js';
import { FAILURES } from '../protocol/failures.js';
import type { Allocator } from './allocator.js';
import { ApiError, methodNotAllowed, send } from './api-answers.js';
import { attributesOf, hashedTokenSegment, optionalHttpUrl, readJson, segment, SERVER_ID } from './api-input.js';
import type { DispatcherMetrics } from './metrics.js';
import { REGISTER_HINT_HEADER, serveConnectionReport } from './server-report-api.js';
import type { TokenConnections } from './token-summaries.js';

export interface InternalApiDeps {
  allocator: Allocator;
  metrics: DispatcherMetrics;
  logger: Logger;
  internalSecret?: string;
}

function secretMatches(given: string | string[] | undefined, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The server-facing API under /internal (§6.4): the registry of servers, their connection
 * reports, and the routing lookup. `parts` are the path segments, 'internal' first.
 */
export async function serveInternal(d: InternalApiDeps, req: IncomingMessage, res: ServerResponse, parts: string[], query: URLSearchParams): Promise<void> {
  if (d.internalSecret !== undefined && !secretMatches(req.headers['x-broker-internal-secret'], d.internalSecret)) {
    req.resume();
    throw new ApiError(FAILURES.INTERNAL_SECRET_REQUIRED, 'Unauthorized', 'the internal API requires a valid x-broker-internal-secret header');
  }
  // /internal/brokerservers[/{id}[/connections/{hashedToken}]]
  if (parts[1] === 'brokerservers') {
    if (parts.length === 2) return listServers(d, req, res, query);
    const serverId = segment(parts[2], FAILURES.INVALID_SERVER_ID, 'server id', SERVER_ID);
    if (parts.length === 3) return serveServerLifecycle(d, req, res, serverId);
    if (parts.length === 5 && parts[3] === 'connections') return serveConnectionReport(d, req, res, serverId, parts[4], query);
  }
  // /internal/tokens/{hashedToken}/connections
  if (parts[1] === 'tokens' && parts.length === 4 && parts[3] === 'connections') {
    if (req.method !== 'GET') throw methodNotAllowed(['GET']);
    const hashedToken = hashedTokenSegment(parts[2]);
    send(res, 200, { jsonapi: { version: '1.0' }, data: tokenResource(await d.allocator.tokenConnections(hashedToken)) });
    return;
  }
  // /internal/connections: the same for every token with live tunnels (one poll for a routing cache)
  if (parts[1] === 'connections' && parts.length === 2) {
    if (req.method !== 'GET') throw methodNotAllowed(['GET']);
    send(res, 200, { jsonapi: { version: '1.0' }, data: (await d.allocator.allTokenConnections()).map(tokenResource) });
    return;
  }
  throw new ApiError(FAILURES.NOT_FOUND, 'Not found', `no such internal endpoint: ${req.method} /${parts.join('/')}`);
}

async function listServers(d: InternalApiDeps, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  if (req.method !== 'GET') throw methodNotAllowed(['GET']);
  const all = query.get('all') === 'true' || query.get('all') === '1';
  const servers = (await d.allocator.listServers()).filter((s) => all || s.status === 'live' || s.status === 'stopping');
  send(res, 200, {
    jsonapi: { version: '1.0' },
    data: servers.map((s) => ({
      id: s.id,
      type: 'broker_server',
      attributes: {
        status: s.status,
        peer_url: s.peerUrl,
        health_check_link: s.healthCheckLink,
        last_seen: new Date(s.lastSeen).toISOString(),
        registered_at: s.registeredAt !== undefined ? new Date(s.registeredAt).toISOString() : null,
        first_seen: new Date(s.firstSeen).toISOString(),
      },
    })),
  });
}

/** `/internal/brokerservers/{id}`: POST is server-starting (or a re-registration), DELETE server-stopping. */
async function serveServerLifecycle(d: InternalApiDeps, req: IncomingMessage, res: ServerResponse, serverId: string): Promise<void> {
  if (req.method === 'POST') return registerServer(d, req, res, serverId);
  if (req.method === 'DELETE') {
    req.resume();
    await d.allocator.stopServer(serverId);
    d.metrics.serverReports.inc({ event: 'server-stopping' });
    send(res, 204, undefined);
    return;
  }
  throw methodNotAllowed(['POST', 'DELETE']);
}

async function registerServer(d: InternalApiDeps, req: IncomingMessage, res: ServerResponse, serverId: string): Promise<void> {
  const attrs = attributesOf(await readJson(req));
  const peerUrl = optionalHttpUrl(attrs.peer_url, 'peer_url');
  const publicUrl = optionalHttpUrl(attrs.public_url, 'public_url');
  const healthCheckLink = typeof attrs.health_check_link === 'string' ? attrs.health_check_link : undefined;
  const openTunnels = typeof attrs.open_tunnels === 'number' && Number.isFinite(attrs.open_tunnels) ? attrs.open_tunnels : undefined;
  const unknown = await d.allocator.registerServer(serverId, { peerUrl, publicUrl, healthCheckLink, openTunnels });
  d.metrics.serverReports.inc({ event: 'server-starting' });
  // A server we did not know that already holds tunnels (we restarted empty): the hint asks
  // it to announce them now rather than one per ping (~25 s), so allocations converge at once.
  const hint: Record<string, string> = unknown && (openTunnels ?? 0) > 0 ? { [REGISTER_HINT_HEADER]: 'true' } : {};
  send(res, 200, { jsonapi: { version: '1.0' }, data: { id: serverId, type: 'broker_server', attributes: { peer_url: peerUrl, ...(publicUrl ? { public_url: publicUrl } : {}) } } }, hint);
}

function tokenResource(t: TokenConnections) {
  return {
    id: t.hashedToken,
    type: 'token_connections',
    attributes: {
      servers: t.servers.map((s) => ({
        server_id: s.serverId,
        peer_url: s.peerUrl,
        status: s.status,
        connections: s.connections.map((c) => ({ client_id: c.clientId, roles: c.roles, tunnels: c.tunnels, last_seen: new Date(c.lastSeen).toISOString() })),
      })),
      allocations: t.allocations.map((a) => ({ client_id: a.clientId, server_id: a.serverId, connected: a.connected })),
    },
  };
}
