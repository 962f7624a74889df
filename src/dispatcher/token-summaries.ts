import type { LivenessView, ServerStatus } from './liveness.js';
import { tunnelCount, type TokenState } from './types.js';

export interface TokenConnections {
  hashedToken: string;
  servers: Array<{
    serverId: string;
    peerUrl?: string;
    status: ServerStatus;
    connections: Array<{ clientId: string; roles: string[]; tunnels: number; lastSeen: number }>;
  }>;
  allocations: Array<{ clientId: string; serverId: string; connected: boolean }>;
}

export interface TokenStats {
  hashedToken: string;
  /** Client ids holding a slot. */
  allocations: number;
  /** Live tunnels (a classic client has two). */
  tunnels: number;
  /** Client ids with at least one live tunnel. */
  clients: number;
}

/** Routing lookup for one token: which servers hold its live tunnels, for which clients, and its held slots. */
export function tokenConnectionsOf(v: LivenessView, hashedToken: string, s: TokenState): TokenConnections {
  const byServer = new Map<string, TokenConnections['servers'][number]>();
  for (const c of Object.values(s.connections)) {
    if (!v.connLive(c)) continue;
    const srv = v.servers.get(c.serverId);
    let entry = byServer.get(c.serverId);
    if (!entry) {
      entry = { serverId: c.serverId, peerUrl: srv?.peerUrl, status: v.serverStatus(srv), connections: [] };
      byServer.set(c.serverId, entry);
    }
    const roles = Object.keys(c.roles).filter((r) => r !== '');
    // One entry per client id (its processes' or tunnels' records summed).
    const same = entry.connections.find((x) => x.clientId === c.clientId);
    if (same) {
      same.roles = [...new Set([...same.roles, ...roles])];
      same.tunnels += tunnelCount(c);
      same.lastSeen = Math.max(same.lastSeen, c.lastSeen);
    } else entry.connections.push({ clientId: c.clientId, roles, tunnels: tunnelCount(c), lastSeen: c.lastSeen });
  }
  const allocations = Object.entries(s.allocations)
    .filter(([clientId, a]) => v.held(s, clientId, a))
    .map(([clientId, a]) => ({ clientId, serverId: a.serverId, connected: v.clientLive(s, clientId) }));
  return { hashedToken, servers: [...byServer.values()].sort((a, b) => (a.serverId < b.serverId ? -1 : 1)), allocations };
}

/** Per-token counts for metrics. */
export function tokenStatsOf(v: LivenessView, hashedToken: string, state: TokenState): TokenStats {
  const live = Object.values(state.connections).filter((c) => v.connLive(c));
  const held = Object.entries(state.allocations).filter(([clientId, a]) => v.held(state, clientId, a)).length;
  return { hashedToken, allocations: held, tunnels: live.reduce((n, c) => n + tunnelCount(c), 0), clients: new Set(live.map((c) => c.clientId)).size };
}
