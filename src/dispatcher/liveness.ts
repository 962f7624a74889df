import { tunnelCount, type Allocation, type ConnectionRecord, type ServerRecord, type TokenState } from './types.js';

/** The times the liveness rules judge by. */
export interface LivenessConfig {
  serverTtlMs: number;
  clientLeaseMs: number;
  connectGraceMs: number;
}

export type ServerStatus = 'live' | 'stopping' | 'down' | 'expired';

export interface ServerView extends ServerRecord {
  status: ServerStatus;
}

/**
 * Liveness rules, evaluated at one instant against one snapshot of the servers. Everything
 * time-based is computed here, lazily, instead of with timers or store TTLs, so both stores
 * behave identically and tests drive time with a fake clock.
 */
export class LivenessView {
  constructor(
    readonly servers: ReadonlyMap<string, ServerRecord>,
    readonly now: number,
    readonly cfg: LivenessConfig,
  ) {}

  serverStatus(s: ServerRecord | undefined): ServerStatus {
    if (!s) return 'expired';
    if (this.now - s.lastSeen > this.cfg.serverTtlMs) return 'expired';
    // Failed probes take a server out, unless it has reported to us since: a server that talks
    // to us is alive, and only the probe path (peer URL, network policy) is broken.
    if (s.downSince !== undefined && !((s.lastReport ?? -Infinity) > s.downSince)) return 'down';
    if (s.stoppingSince !== undefined) return 'stopping';
    return 'live';
  }

  /** Still serving its tunnels (a stopping server drains, so its tunnels count). */
  serverAlive(id: string): boolean {
    const st = this.serverStatus(this.servers.get(id));
    return st === 'live' || st === 'stopping';
  }

  isCandidate(id: string): boolean {
    return this.serverStatus(this.servers.get(id)) === 'live';
  }

  candidates(): string[] {
    return [...this.servers.keys()].filter((id) => this.isCandidate(id));
  }

  connLive(c: ConnectionRecord): boolean {
    return tunnelCount(c) > 0 && this.now - c.lastSeen <= this.cfg.serverTtlMs && this.serverAlive(c.serverId);
  }

  /**
   * Until when a dead connection record still holds its client's slot. A server that went
   * away leaves its (living) clients the connect grace to find another server; a connection
   * that merely stopped pinging gets the short lease.
   */
  deadConnHold(c: ConnectionRecord): number {
    if (tunnelCount(c) === 0) return -Infinity;
    const s = this.servers.get(c.serverId);
    if (!s) return c.lastSeen + this.cfg.serverTtlMs;
    if (this.serverStatus(s) === 'down') return s.downSince! + this.cfg.connectGraceMs;
    if (this.now - s.lastSeen > this.cfg.serverTtlMs) return s.lastSeen + this.cfg.serverTtlMs + this.cfg.connectGraceMs;
    return c.lastSeen + this.cfg.serverTtlMs + this.cfg.clientLeaseMs;
  }

  connectionsOf(state: TokenState, clientId: string): ConnectionRecord[] {
    return Object.values(state.connections).filter((c) => c.clientId === clientId);
  }

  clientLive(state: TokenState, clientId: string): boolean {
    return this.connectionsOf(state, clientId).some((c) => this.connLive(c));
  }

  /** The time until which an allocation without a live tunnel is still held. */
  holdDeadline(state: TokenState, clientId: string, a: Allocation): number {
    let d = a.holdUntil ?? -Infinity;
    for (const c of this.connectionsOf(state, clientId)) if (!this.connLive(c)) d = Math.max(d, this.deadConnHold(c));
    return d;
  }

  held(state: TokenState, clientId: string, a: Allocation): boolean {
    return this.clientLive(state, clientId) || this.now < this.holdDeadline(state, clientId, a);
  }

  /** Drops what no longer matters; returns whether anything changed. */
  prune(state: TokenState): boolean {
    let changed = false;
    for (const [key, c] of Object.entries(state.connections)) {
      if (!this.connLive(c) && this.now >= this.deadConnHold(c)) {
        delete state.connections[key];
        changed = true;
      }
    }
    for (const [clientId, a] of Object.entries(state.allocations)) {
      if (!this.held(state, clientId, a)) {
        delete state.allocations[clientId];
        changed = true;
      }
    }
    for (const [clientId, at] of Object.entries(state.released)) {
      if (this.connectionsOf(state, clientId).length === 0 && this.now - at >= this.cfg.clientLeaseMs) {
        delete state.released[clientId];
        changed = true;
      }
    }
    return changed;
  }

  /** How many of the token's other clients sit on each server. */
  usage(state: TokenState, exceptClientId: string): Map<string, number> {
    const m = new Map<string, number>();
    for (const [clientId, a] of Object.entries(state.allocations)) {
      if (clientId !== exceptClientId) m.set(a.serverId, (m.get(a.serverId) ?? 0) + 1);
    }
    return m;
  }
}
