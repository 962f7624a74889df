import type { Egress } from '../http/egress.js';
import type { PeerRoute, PeerServer } from './peer-routing.js';

interface ServersDocument {
  data?: Array<{ id?: unknown; attributes?: { status?: unknown; peer_url?: unknown } }>;
}

interface RoutingDocument {
  data?: Array<{
    id?: unknown;
    attributes?: { servers?: Array<{ server_id?: unknown; peer_url?: unknown; status?: unknown; connections?: Array<{ tunnels?: unknown }> }> };
  }>;
}

/** GET of one of the dispatcher's internal lookups; anything but 200 is an error. */
export async function getDispatcherJson(egress: Egress, dispatcher: { dispatcherUrl: string; internalSecret?: string }, path: string): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (dispatcher.internalSecret) headers['x-broker-internal-secret'] = dispatcher.internalSecret;
  const res = await egress.request(`${dispatcher.dispatcherUrl}${path}`, { method: 'GET', headers, signal: AbortSignal.timeout(2500) });
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`dispatcher answered ${res.statusCode} to GET ${path}`);
  }
  return res.body.json();
}

/** The servers of `GET /internal/brokerservers` by id (entries without an id, peer URL or status are skipped). */
export function serversFrom(body: unknown): Map<string, PeerServer> {
  const doc = body as ServersDocument;
  const next = new Map<string, PeerServer>();
  for (const s of doc.data ?? []) {
    if (typeof s.id !== 'string' || typeof s.attributes?.peer_url !== 'string' || typeof s.attributes.status !== 'string') continue;
    next.set(s.id, { serverId: s.id, peerUrl: s.attributes.peer_url.replace(/\/+$/, ''), status: s.attributes.status });
  }
  return next;
}

/** Token hash → the live peers (not this server) holding its tunnels, from `GET /internal/connections`. */
export function routesFrom(body: unknown, selfServerId: string, withTunnels?: Set<string>): Map<string, PeerRoute[]> {
  const doc = body as RoutingDocument;
  const next = new Map<string, PeerRoute[]>();
  for (const token of doc.data ?? []) {
    if (typeof token.id !== 'string') continue;
    const peers: PeerRoute[] = [];
    for (const s of token.attributes?.servers ?? []) {
      if (typeof s.server_id !== 'string') continue;
      const tunnels = (s.connections ?? []).reduce((n, c) => n + (typeof c.tunnels === 'number' ? c.tunnels : 1), 0);
      // Tunnels anywhere, even on this server or a draining one: the token's clients are around.
      if (tunnels > 0) withTunnels?.add(token.id);
      if (s.server_id === selfServerId || typeof s.peer_url !== 'string' || s.status !== 'live') continue;
      if (tunnels > 0) peers.push({ serverId: s.server_id, peerUrl: s.peer_url.replace(/\/+$/, ''), tunnels });
    }
    if (peers.length > 0) next.set(token.id, peers);
  }
  return next;
}
