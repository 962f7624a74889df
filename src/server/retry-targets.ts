import { setTimeout as sleep } from 'node:timers/promises';
import type { Connection } from './connection.js';
import type { ConnectionPool } from './pool.js';
import type { PlatformRelay, RelayDeps } from './relay.js';

/*
 * Where a request that failed on one connection may go next: a connection of another client
 * here (what a hedge needs), past the failed client's other tunnels, or the same client once
 * it reconnects.
 */

/** Whether a connection not yet tried and not of `connection`'s client could take the token's request now. */
export function otherClientSelectable(pool: ConnectionPool<Connection>, token: string, connection: Connection, tried: ReadonlySet<Connection>): boolean {
  const now = Date.now();
  const clientId = connection.identity?.clientId;
  for (const c of pool.members(token)) {
    if (c === connection || tried.has(c) || (clientId !== undefined && c.identity?.clientId === clientId)) continue;
    if (pool.isSelectable(c, now)) return true;
  }
  return false;
}

/** `exclude` plus every connection of the token belonging to one of `clientIds`. */
export function withClients(pool: ConnectionPool<Connection>, token: string, exclude: ReadonlySet<Connection>, clientIds: ReadonlySet<string>): Set<Connection> {
  const out = new Set(exclude);
  for (const c of pool.members(token)) if (c.identity && clientIds.has(c.identity.clientId)) out.add(c);
  return out;
}

/**
 * Waits up to `waitMs` (and within the request's timeout) for a connection of the token
 * outside `exclude`; true when one came.
 */
export async function waitForReconnect(relay: PlatformRelay, deps: RelayDeps, exclude: ReadonlySet<Connection>, waitMs: number): Promise<boolean> {
  const waitStarted = Date.now();
  const deadline = Math.min(waitStarted + waitMs, relay.startedAt + deps.requestTimeoutMs);
  while (Date.now() < deadline && !relay.platformGone && !relay.timedOut) {
    // The pool has no events; a rare path, so a short poll with a deadline is enough.
    await sleep(100, undefined, { ref: false });
    if (deps.pool.select(relay.init.token, exclude, Date.now(), false).kind === 'ok') {
      deps.metrics.relayRetries.inc({ reason: 'reconnected' });
      deps.logger.info({ requestId: relay.init.requestId, waitedMs: Date.now() - waitStarted }, 'the broker client reconnected; retrying the idempotent request');
      return true;
    }
  }
  return false;
}

/** How often a wait for a moving token's tunnels asks the peers again (their lookup refreshes at most once a second). */
const PEERS_AGAIN_MS = 250;

/**
 * Waits up to `waitMs` (and within the request's timeout) for the token's tunnels to show up
 * here or at a peer; 'peer' when a peer answered the platform, 'again' when a connection here
 * can take the request, undefined when none came.
 */
export async function waitForMovingTunnels(relay: PlatformRelay, deps: RelayDeps, waitMs: number): Promise<'peer' | 'again' | undefined> {
  const waitStarted = Date.now();
  const deadline = Math.min(waitStarted + waitMs, relay.startedAt + deps.requestTimeoutMs);
  let peersAskedAt = waitStarted;
  while (Date.now() < deadline && !relay.platformGone && !relay.timedOut) {
    await sleep(100, undefined, { ref: false });
    if (deps.pool.select(relay.init.token, new Set(), Date.now(), false).kind === 'ok') {
      deps.logger.info({ requestId: relay.init.requestId, waitedMs: Date.now() - waitStarted }, 'the token had no tunnel here for a moment (its clients were moving); relaying the request now');
      return 'again';
    }
    if (relay.init.fallback && Date.now() - peersAskedAt >= PEERS_AGAIN_MS) {
      peersAskedAt = Date.now();
      if ((await relay.init.fallback()).answered) return 'peer';
    }
  }
  return undefined;
}
