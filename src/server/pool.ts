/** What the pool needs to know about a connection to choose it. */
export interface PoolMember {
  readonly state: string;
  readonly inFlight: number;
  /** ms since the last packet from the client. */
  silentFor(now: number): number;
  /** A liveness probe went unanswered: prefer any other connection. */
  unresponsive?(now: number): boolean;
}

export type Selection<C> =
  | { kind: 'ok'; connection: C }
  /** The token has no connection and none closed recently. */
  | { kind: 'no-connection' }
  /** The token lost its last connection less than the grace period ago: clients are reconnecting. */
  | { kind: 'recently-disconnected' }
  /** Connections exist, but none is usable now (draining, heartbeat late, or all excluded). */
  | { kind: 'not-ready' };

interface TokenPool<C> {
  members: C[];
  /** Round-robin start for the next tie-break. */
  cursor: number;
}

export interface PoolOptions {
  /** A connection silent for longer than this is skipped (its heartbeat is late). */
  lateAfterMs: number;
  /** After the last connection of a token goes, answer 503 (not 404) for this long. */
  reconnectGraceMs?: number;
  /**
   * Connections within this many in-flight relays of the least busy one count as tied and take
   * turns (default 1): keeps the spread even when every connection is busy, while a connection
   * that falls behind (slow client, stuck origin) is still passed over.
   */
  slack?: number;
}

/**
 * Connections per (lowercase) token. Selection spreads requests over every ready connection
 * of the token (every client, both roles): fewest relays in flight wins (within the slack),
 * ties go round robin so equal connections take turns.
 */
export class ConnectionPool<C extends PoolMember> {
  readonly #tokens = new Map<string, TokenPool<C>>();
  readonly #disconnectedAt = new Map<string, number>();
  readonly #lateAfterMs: number;
  readonly #graceMs: number;
  readonly #slack: number;

  constructor(options: PoolOptions) {
    this.#lateAfterMs = options.lateAfterMs;
    this.#graceMs = options.reconnectGraceMs ?? 60_000;
    this.#slack = options.slack ?? 1;
  }

  add(token: string, connection: C): void {
    let pool = this.#tokens.get(token);
    if (!pool) {
      pool = { members: [], cursor: 0 };
      this.#tokens.set(token, pool);
    }
    if (!pool.members.includes(connection)) pool.members.push(connection);
    this.#disconnectedAt.delete(token);
  }

  /** Removes a connection; returns how many remain for the token. */
  remove(token: string, connection: C, now = Date.now()): number {
    const pool = this.#tokens.get(token);
    if (!pool) return 0;
    const i = pool.members.indexOf(connection);
    if (i >= 0) {
      pool.members.splice(i, 1);
      if (pool.cursor > i) pool.cursor--;
    }
    if (pool.members.length === 0) {
      this.#tokens.delete(token);
      this.#disconnectedAt.set(token, now);
    }
    return pool.members.length;
  }

  members(token: string): readonly C[] {
    return this.#tokens.get(token)?.members ?? [];
  }

  tokens(): string[] {
    return [...this.#tokens.keys()];
  }

  all(): C[] {
    return [...this.#tokens.values()].flatMap((p) => p.members);
  }

  recentlyDisconnected(token: string, now = Date.now()): boolean {
    const at = this.#disconnectedAt.get(token);
    if (at === undefined) return false;
    if (now - at < this.#graceMs) return true;
    this.#disconnectedAt.delete(token);
    return false;
  }

  /**
   * The token has connections here and every one is draining: its clients were told to go (a
   * peer they pass through is stopping, a drain) or are stopping, and reconnect within seconds.
   */
  allDraining(token: string): boolean {
    const members = this.#tokens.get(token)?.members;
    return members !== undefined && members.length > 0 && members.every((c) => c.state === 'draining');
  }

  isSelectable(c: C, now: number): boolean {
    return this.#usable(c, now) && !c.unresponsive?.(now);
  }

  #usable(c: C, now: number): boolean {
    return c.state === 'ready' && c.silentFor(now) <= this.#lateAfterMs;
  }

  /**
   * Responsive connections first; an unresponsive one only when nothing else is usable (it may
   * yet answer) and `orUnresponsive` (false when the caller has somewhere else to go).
   */
  select(token: string, exclude: ReadonlySet<C> = new Set(), now = Date.now(), orUnresponsive = true): Selection<C> {
    const first = this.#select(token, exclude, now, (c) => this.isSelectable(c, now));
    return first.kind === 'not-ready' && orUnresponsive ? this.#select(token, exclude, now, (c) => this.#usable(c, now)) : first;
  }

  #select(token: string, exclude: ReadonlySet<C>, now: number, selectable: (c: C) => boolean): Selection<C> {
    const pool = this.#tokens.get(token);
    if (!pool || pool.members.length === 0) {
      return this.recentlyDisconnected(token, now) ? { kind: 'recently-disconnected' } : { kind: 'no-connection' };
    }
    const n = pool.members.length;
    let least = Infinity;
    for (const c of pool.members) if (!exclude.has(c) && selectable(c)) least = Math.min(least, c.inFlight);
    if (least === Infinity) return { kind: 'not-ready' };
    // Round robin from the cursor over the connections tied (within the slack) for least busy.
    for (let k = 0; k < n; k++) {
      const index = (pool.cursor + k) % n;
      const c = pool.members[index];
      if (exclude.has(c) || c.inFlight > least + this.#slack || !selectable(c)) continue;
      pool.cursor = (index + 1) % n;
      return { kind: 'ok', connection: c };
    }
    return { kind: 'not-ready' };
  }

  /** Periodic cleanup of expired "recently disconnected" marks. */
  sweep(now = Date.now()): void {
    for (const [token, at] of this.#disconnectedAt) if (now - at >= this.#graceMs) this.#disconnectedAt.delete(token);
  }
}
