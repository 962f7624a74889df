import type { Logger } from '../observability/logger.js';
import type { LivenessView } from './liveness.js';
import { tokenLabel, tunnelCount, type ConnectionRecord, type TokenState } from './types.js';

export type ConnectionEvent = 'client-connected' | 'client-pinged' | 'client-disconnected';

/** A classic client opens exactly two tunnels per client id (primary and secondary). */
const TUNNELS_PER_CLIENT = 2;

/** A server's report of one tunnel of a client. */
export interface ConnectionReport {
  serverId: string;
  hashedToken: string;
  clientId: string;
  event: ConnectionEvent;
  role: string | undefined;
  instance: string | undefined;
  /** The connection record's key (see connectionKey). */
  key: string;
}

export interface ReportRules {
  maxClientsPerToken: number;
  clientLeaseMs: number;
  connectGraceMs: number;
  log: Logger;
}

/** Applies a report to one token state (inside the CAS loop); returns [undefined, changed]. */
export function applyConnectionReport(v: LivenessView, s: TokenState, r: ConnectionReport, rules: ReportRules): [undefined, boolean] {
  const changed = v.prune(s);
  if (r.event === 'client-disconnected') return [undefined, applyDisconnect(v, s, r, rules) || changed];
  applyTunnelSeen(v, s, r);
  if (!(r.clientId in s.released)) claimSlot(v, s, r, rules);
  return [undefined, true];
}

/** Resolves false when there was no record of the connection. */
function applyDisconnect(v: LivenessView, s: TokenState, r: ConnectionReport, rules: ReportRules): boolean {
  const c = s.connections[r.key];
  if (!c) return false;
  closeTunnel(c, r.role);
  c.lastSeen = v.now;
  if (tunnelCount(c) === 0) delete s.connections[r.key];
  const a = s.allocations[r.clientId];
  if (a && !v.clientLive(s, r.clientId)) {
    // Its last tunnel closed. On a live server that means the client went away: short lease.
    // On a stopping server the client is alive and moving: give it time to re-ask.
    if (v.isCandidate(r.serverId)) a.holdUntil = v.now + rules.clientLeaseMs;
    else a.holdUntil = Math.max(a.holdUntil ?? 0, v.now + rules.connectGraceMs);
  }
  return true;
}

function closeTunnel(c: ConnectionRecord, role: string | undefined): void {
  if (role !== undefined && c.roles[role]) delete c.roles[role];
  else if ((c.roles[''] ?? 0) > 0) c.roles[''] -= 1;
  else {
    const any = Object.keys(c.roles)[0];
    if (any !== undefined) delete c.roles[any];
  }
  for (const [r, n] of Object.entries(c.roles)) if (n <= 0) delete c.roles[r];
}

function applyTunnelSeen(v: LivenessView, s: TokenState, r: ConnectionReport): void {
  const { serverId, clientId, instance, role } = r;
  const now = v.now;
  const roleKey = role ?? '';
  const c = (s.connections[r.key] ??= { serverId, clientId, ...(instance !== undefined ? { instance } : {}), roles: {}, firstSeen: now, lastSeen: now });
  if (r.event === 'client-connected') {
    // Without roles we count; capped at the two tunnels a client opens, so a report the
    // server retried after a lost answer cannot keep a dead client alive.
    c.roles[roleKey] = role !== undefined ? 1 : Math.min((c.roles[roleKey] ?? 0) + 1, TUNNELS_PER_CLIENT);
  } else if (role !== undefined) {
    c.roles[role] ??= 1;
  } else if (tunnelCount(c) === 0) {
    // A ping for a tunnel we never heard of (e.g. the dispatcher restarted): at least one is open.
    c.roles[''] = 1;
  }
  c.lastSeen = now;
}

/** A live tunnel holds its client's slot (unless the client released it). */
function claimSlot(v: LivenessView, s: TokenState, r: ConnectionReport, rules: ReportRules): void {
  const { serverId, clientId } = r;
  const a = s.allocations[clientId];
  if (!a) {
    // A connection we did not hand out (restart with an empty store, or a client that
    // gave up asking): it exists, so it holds a slot.
    s.allocations[clientId] = { serverId, grantedAt: v.now, reported: true };
    const n = Object.keys(s.allocations).length;
    if (n > rules.maxClientsPerToken) {
      rules.log.warn({ tokenHash: tokenLabel(r.hashedToken), clientId, serverId, clients: n, max: rules.maxClientsPerToken }, 'connection reported for a client without allocation; token is over its limit');
    }
    return;
  }
  delete a.holdUntil;
  // Follow reality: the client's tunnels are here, not where we sent it.
  if (a.serverId !== serverId && v.isCandidate(serverId) && !v.connectionsOf(s, clientId).some((x) => x.serverId === a.serverId && v.connLive(x))) {
    a.serverId = serverId;
  }
}
