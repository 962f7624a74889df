import { hashToken, maskToken } from '../protocol/index.js';
import type { Connection } from './connection.js';
import type { ConnectionPool } from './pool.js';

/** GET /connection-status/<token>: one entry per tunnel (the caller already knows the token). */
export function connectionStatus(pool: ConnectionPool<Connection>, token: string): { ok: boolean; clients: unknown[] } | undefined {
  const members = pool.members(token);
  if (members.length === 0) return undefined;
  return {
    ok: true,
    clients: members.map((c) => ({
      version: c.identity?.version,
      filters: c.identity?.filters,
      brokerClientId: c.identity?.clientId,
      role: c.identity?.role,
      capabilities: c.identity?.capabilities,
      state: c.state,
      inFlight: c.inFlight,
      served: c.served,
      connection: c.id,
    })),
  };
}

/** GET /connections-status: masked and hashed identifiers only, never a token. */
export function connectionsStatus(pool: ConnectionPool<Connection>): unknown[] {
  return pool.tokens().map((token) => {
    const members = pool.members(token);
    return {
      identifier: maskToken(token),
      hashedIdentifier: hashToken(token),
      versions: [...new Set(members.map((c) => c.identity?.version).filter(Boolean))],
      brokerClientIds: [...new Set(members.map((c) => c.identity?.clientId).filter(Boolean))],
      connections: members.map((c) => ({ connection: c.id, state: c.state, inFlight: c.inFlight, served: c.served })),
    };
  });
}
