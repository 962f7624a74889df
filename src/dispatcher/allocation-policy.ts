import type { LivenessView } from './liveness.js';
import { chooseServer } from './placement.js';
import type { TokenLimit, TokenRefusal } from './token-limit.js';
import type { Allocation, ServerRecord, TokenState } from './types.js';

export type AllocationResult =
  | { kind: 'granted'; server: ServerRecord; created: boolean; moved: boolean }
  | TokenRefusal
  | { kind: 'unavailable'; code: 'NO_LIVE_SERVER'; retryAfterSeconds: number };

/** One client's request for its server, as the token decisions see it. */
export interface AllocationRequest {
  hashedToken: string;
  clientId: string;
  /** The asking process (our header); a release from another one may be ignored. */
  instance: string | undefined;
  /** Servers that take new clients (at least one). */
  candidates: string[];
  connectGraceMs: number;
}

/**
 * Which server a client gets, over one token state (inside the CAS loop): a known client keeps
 * its slot, or moves when its server is stopping or gone; a new one gets a slot if the token's
 * limit allows, on the server placement prefers. Returns [result, changed].
 */
export function decideAllocation(v: LivenessView, s: TokenState, req: AllocationRequest, limit: TokenLimit): [AllocationResult, boolean] {
  const pruned = v.prune(s);
  const a = s.allocations[req.clientId];
  // Pruned already if not held: this client keeps its slot.
  if (a) return [renewOrMove(v, s, req, a), true];
  const refusal = limit.refusal(v, s);
  if (refusal) return [refusal, pruned];
  const now = v.now;
  const target = chooseServer(req.hashedToken, req.candidates, v.usage(s, req.clientId))!;
  s.allocations[req.clientId] = { serverId: target, grantedAt: now, holdUntil: now + req.connectGraceMs, ...(req.instance !== undefined ? { instance: req.instance } : {}) };
  delete s.released[req.clientId];
  return [{ kind: 'granted', server: v.servers.get(target)!, created: true, moved: false }, true];
}

function renewOrMove(v: LivenessView, s: TokenState, req: AllocationRequest, a: Allocation): AllocationResult {
  const { clientId, instance } = req;
  const now = v.now;
  const live = v.clientLive(s, clientId);
  if (instance !== undefined) a.instance = instance;
  else delete a.instance;
  if (v.isCandidate(a.serverId)) {
    a.grantedAt = now;
    if (!live) a.holdUntil = Math.max(a.holdUntil ?? 0, now + req.connectGraceMs);
    delete s.released[clientId];
    return { kind: 'granted', server: v.servers.get(a.serverId)!, created: false, moved: false };
  }
  // Its server is stopping or gone: move it, without counting it as a new client.
  const target = chooseServer(req.hashedToken, req.candidates, v.usage(s, clientId))!;
  a.serverId = target;
  a.grantedAt = now;
  a.holdUntil = now + req.connectGraceMs;
  delete a.reported;
  delete s.released[clientId];
  return { kind: 'granted', server: v.servers.get(target)!, created: false, moved: true };
}

export interface ReleaseOutcome {
  /** The client held a slot and gave it back. */
  released: boolean;
  /** Ignored: another process of the same client id holds the slot. */
  kept: boolean;
}

/**
 * A client gives its slot back, over one token state (inside the CAS loop). With `instance`
 * the release is ignored while another process of the same client id holds the slot: it asked
 * for it since, or it has live tunnels (the old pod of a rolling update leaving).
 */
export function decideRelease(v: LivenessView, s: TokenState, clientId: string, instance: string | undefined): [ReleaseOutcome, boolean] {
  const pruned = v.prune(s);
  const had = clientId in s.allocations;
  const hasConnections = v.connectionsOf(s, clientId).length > 0;
  if (!had && !hasConnections) return [{ released: false, kept: false }, pruned];
  if (instance !== undefined) {
    const a = s.allocations[clientId];
    const twinAsked = a?.instance !== undefined && a.instance !== instance;
    const twinLive = v.connectionsOf(s, clientId).some((c) => c.instance !== undefined && c.instance !== instance && v.connLive(c));
    if (twinAsked || twinLive) return [{ released: false, kept: true }, pruned];
  }
  delete s.allocations[clientId];
  // Its tunnels may still be draining; their reports must not re-take the slot.
  s.released[clientId] = v.now;
  return [{ released: had, kept: false }, true];
}
