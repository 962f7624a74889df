import type { LivenessView } from './liveness.js';
import type { TokenState } from './types.js';

/** The per-token limit and how long refused clients are told to wait. */
export interface TokenLimitConfig {
  maxClientsPerToken: number;
  retryAfterSeconds: number;
  startupGraceMs: number;
}

export interface TokenRefusal {
  kind: 'refused';
  code: 'MAX_CLIENTS_PER_TOKEN' | 'WARMING_UP';
  held: number;
  max: number;
  retryAfterSeconds: number;
}

/**
 * Whether a token takes one more client id: the per-token limit, the startup grace, and the
 * Retry-After that keeps the queue of waiting clients asking at the right pace.
 */
export class TokenLimit {
  constructor(
    readonly config: TokenLimitConfig,
    /** When this dispatcher started (epoch ms from the injected clock). */
    readonly startedAt: number,
  ) {}

  /** The refusal for a new client id of this (pruned) token state, or undefined when it may have a slot. */
  refusal(v: LivenessView, s: TokenState): TokenRefusal | undefined {
    const held = Object.keys(s.allocations).length;
    const max = this.config.maxClientsPerToken;
    if (held >= max) {
      return { kind: 'refused', code: 'MAX_CLIENTS_PER_TOKEN', held, max, retryAfterSeconds: this.#retryAfter(v, s) };
    }
    if (this.#warmingUp(v)) {
      const secs = Math.ceil((this.startedAt + this.config.startupGraceMs - v.now) / 1000);
      return { kind: 'refused', code: 'WARMING_UP', held, max, retryAfterSeconds: Math.max(1, Math.min(secs, this.config.retryAfterSeconds)) };
    }
    return undefined;
  }

  /**
   * Just after start, servers that were already running (we learn of them from their reports,
   * not their registration) may hold connections not re-reported yet (pings come every ~25 s):
   * a new client could take a slot that is in fact used. New client ids wait that long; known
   * ones are served. A fresh system (servers register first) or a Redis store that kept its
   * state never waits.
   */
  #warmingUp(v: LivenessView): boolean {
    if (v.now >= this.startedAt + this.config.startupGraceMs) return false;
    for (const s of v.servers.values()) if ((s.discoveredAt ?? 0) >= this.startedAt) return true;
    return false;
  }

  /**
   * Retry-After for a full token: when a slot is about to lapse (a lease is running), say so,
   * so a waiting client takes it promptly; otherwise the configured value.
   */
  #retryAfter(v: LivenessView, s: TokenState): number {
    let soonest = Infinity;
    for (const [clientId, a] of Object.entries(s.allocations)) {
      if (!v.clientLive(s, clientId)) soonest = Math.min(soonest, v.holdDeadline(s, clientId, a));
    }
    if (!Number.isFinite(soonest)) return this.config.retryAfterSeconds;
    return Math.max(1, Math.min(this.config.retryAfterSeconds, Math.ceil((soonest - v.now) / 1000)));
  }
}
