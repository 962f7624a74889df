import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../observability/logger.js';
import { silentLogger } from '../observability/logger.js';
import { chooseServer } from './placement.js';
import { StoreError, type DispatcherStore } from './store.js';
import {
  connectionKey,
  emptyTokenState,
  isEmptyTokenState,
  tunnelCount,
  type Allocation,
  type ConnectionRecord,
  type ServerRecord,
  type TokenState,
} from './types.js';

export interface AllocatorConfig {
  maxClientsPerToken: number;
  serverTtlMs: number;
  clientLeaseMs: number;
  connectGraceMs: number;
  retryAfterSeconds: number;
  startupGraceMs: number;
}

export interface AllocatorDeps {
  store: DispatcherStore;
  /** Injectable clock (epoch ms) so tests move time instead of sleeping. */
  clock?: () => number;
  logger?: Logger;
}

export type AllocationResult =
  | { kind: 'granted'; server: ServerRecord; created: boolean; moved: boolean }
  | { kind: 'refused'; code: 'MAX_CLIENTS_PER_TOKEN' | 'WARMING_UP'; held: number; max: number; retryAfterSeconds: number }
  | { kind: 'unavailable'; code: 'NO_LIVE_SERVER'; retryAfterSeconds: number };

export type ConnectionEvent = 'client-connected' | 'client-pinged' | 'client-disconnected';

export type ServerStatus = 'live' | 'stopping' | 'down' | 'expired';

export interface ServerView extends ServerRecord {
  status: ServerStatus;
}

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

/** Short, non-reversible label for logs and metrics: the first 8 hex chars of the hashed token. */
export function tokenLabel(hashedToken: string): string {
  return hashedToken.slice(0, 8);
}

const MAX_CAS_ATTEMPTS = 200;
/** A classic client opens exactly two tunnels per client id (primary and secondary). */
const TUNNELS_PER_CLIENT = 2;

/**
 * Liveness rules, evaluated at one instant against one snapshot of the servers. Everything
 * time-based is computed here, lazily, instead of with timers or store TTLs, so both stores
 * behave identically and tests drive time with a fake clock.
 */
class View {
  constructor(
    readonly servers: ReadonlyMap<string, ServerRecord>,
    readonly now: number,
    readonly cfg: AllocatorConfig,
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

/**
 * The dispatcher's decisions: allocations, the per-token limit, placement, and the registry
 * of servers and connections reported by servers. Every token decision is a read-compute-
 * compare-and-set loop over the token's whole state, so two replicas sharing a store can
 * never both hand out the last slot.
 */
export class Allocator {
  readonly #store: DispatcherStore;
  readonly #clock: () => number;
  readonly #log: Logger;
  readonly #startedAt: number;
  /** When each waiting client's refusal was last logged at info (a waiter asks every ~2 s). */
  readonly #refusalLogged = new Map<string, number>();

  constructor(
    readonly config: AllocatorConfig,
    deps: AllocatorDeps,
  ) {
    this.#store = deps.store;
    this.#clock = deps.clock ?? Date.now;
    this.#log = deps.logger ?? silentLogger();
    this.#startedAt = this.#clock();
  }

  get store(): DispatcherStore {
    return this.#store;
  }

  async #view(): Promise<View> {
    const servers = await this.#store.getServers();
    return new View(new Map(servers.map((s) => [s.id, s])), this.#clock(), this.config);
  }

  /** Read-modify-CAS loop. `fn` mutates the state and returns [result, changed]; it may run several times. */
  async #updateToken<R>(hashedToken: string, fn: (state: TokenState) => [R, boolean]): Promise<R> {
    for (let attempt = 1; ; attempt++) {
      const { state, version } = await this.#store.readToken(hashedToken);
      const s = state ?? emptyTokenState();
      const [result, changed] = fn(s);
      if (!changed) return result;
      const next = isEmptyTokenState(s) ? undefined : s;
      if (next === undefined && state === undefined) return result;
      if (await this.#store.writeToken(hashedToken, version, next)) return result;
      if (attempt >= MAX_CAS_ATTEMPTS) throw new StoreError(`too much contention on token ${tokenLabel(hashedToken)}`);
      // Another replica won this round; back off a little (jittered) and recompute from fresh state.
      await sleep(Math.random() * Math.min(attempt, 10) * 2);
    }
  }

  /** A client asks for its server (client-facing POST); `instance` names the asking process (our header). */
  async allocate(hashedToken: string, clientId: string, instance?: string): Promise<AllocationResult> {
    const v = await this.#view();
    const now = v.now;
    const candidates = v.candidates();
    if (candidates.length === 0) {
      return { kind: 'unavailable', code: 'NO_LIVE_SERVER', retryAfterSeconds: this.config.retryAfterSeconds };
    }
    const result = await this.#updateToken<AllocationResult>(hashedToken, (s) => {
      const pruned = v.prune(s);
      const a = s.allocations[clientId];
      if (a) {
        // Pruned already if not held: this client keeps its slot.
        const live = v.clientLive(s, clientId);
        if (instance !== undefined) a.instance = instance;
        else delete a.instance;
        if (v.isCandidate(a.serverId)) {
          a.grantedAt = now;
          if (!live) a.holdUntil = Math.max(a.holdUntil ?? 0, now + this.config.connectGraceMs);
          delete s.released[clientId];
          return [{ kind: 'granted', server: v.servers.get(a.serverId)!, created: false, moved: false }, true];
        }
        // Its server is stopping or gone: move it, without counting it as a new client.
        const target = chooseServer(hashedToken, candidates, v.usage(s, clientId))!;
        a.serverId = target;
        a.grantedAt = now;
        a.holdUntil = now + this.config.connectGraceMs;
        delete a.reported;
        delete s.released[clientId];
        return [{ kind: 'granted', server: v.servers.get(target)!, created: false, moved: true }, true];
      }
      const held = Object.keys(s.allocations).length;
      if (held >= this.config.maxClientsPerToken) {
        return [{ kind: 'refused', code: 'MAX_CLIENTS_PER_TOKEN', held, max: this.config.maxClientsPerToken, retryAfterSeconds: this.#retryAfter(v, s) }, pruned];
      }
      if (this.#warmingUp(v)) {
        const secs = Math.ceil((this.#startedAt + this.config.startupGraceMs - now) / 1000);
        return [{ kind: 'refused', code: 'WARMING_UP', held, max: this.config.maxClientsPerToken, retryAfterSeconds: Math.max(1, Math.min(secs, this.config.retryAfterSeconds)) }, pruned];
      }
      const target = chooseServer(hashedToken, candidates, v.usage(s, clientId))!;
      s.allocations[clientId] = { serverId: target, grantedAt: now, holdUntil: now + this.config.connectGraceMs, ...(instance !== undefined ? { instance } : {}) };
      delete s.released[clientId];
      return [{ kind: 'granted', server: v.servers.get(target)!, created: true, moved: false }, true];
    });
    const token = tokenLabel(hashedToken);
    if (result.kind === 'granted') {
      const level = result.created || result.moved ? 'info' : 'debug';
      this.#log[level]({ tokenHash: token, clientId, serverId: result.server.id, created: result.created, moved: result.moved }, 'allocation granted');
    } else if (result.kind === 'refused') {
      const key = `${hashedToken} ${clientId}`;
      const last = this.#refusalLogged.get(key);
      const level = last === undefined || Date.now() - last >= 60_000 ? 'info' : 'debug';
      if (level === 'info') {
        if (this.#refusalLogged.size >= 10_000) this.#refusalLogged.clear();
        this.#refusalLogged.set(key, Date.now());
      }
      this.#log[level]({ tokenHash: token, clientId, code: result.code, held: result.held, retryAfter: result.retryAfterSeconds }, 'allocation refused; the client waits for a slot');
    }
    return result;
  }

  /**
   * Just after start, servers that were already running (we learn of them from their reports,
   * not their registration) may hold connections not re-reported yet (pings come every ~25 s):
   * a new client could take a slot that is in fact used. New client ids wait that long; known
   * ones are served. A fresh system (servers register first) or a Redis store that kept its
   * state never waits.
   */
  #warmingUp(v: View): boolean {
    if (v.now >= this.#startedAt + this.config.startupGraceMs) return false;
    for (const s of v.servers.values()) if ((s.discoveredAt ?? 0) >= this.#startedAt) return true;
    return false;
  }

  /**
   * Retry-After for a full token: when a slot is about to lapse (a lease is running), say so,
   * so a waiting client takes it promptly; otherwise the configured value.
   */
  #retryAfter(v: View, s: TokenState): number {
    let soonest = Infinity;
    for (const [clientId, a] of Object.entries(s.allocations)) {
      if (!v.clientLive(s, clientId)) soonest = Math.min(soonest, v.holdDeadline(s, clientId, a));
    }
    if (!Number.isFinite(soonest)) return this.config.retryAfterSeconds;
    return Math.max(1, Math.min(this.config.retryAfterSeconds, Math.ceil((soonest - v.now) / 1000)));
  }

  /**
   * A client gives its slot back (client-facing DELETE, sent on SIGTERM). With `instance` (our
   * header) the release is ignored while another process of the same client id holds the slot:
   * it asked for it since, or it has live tunnels (the old pod of a rolling update leaving).
   */
  async release(hashedToken: string, clientId: string, instance?: string): Promise<boolean> {
    const v = await this.#view();
    let kept = false;
    const released = await this.#updateToken(hashedToken, (s) => {
      kept = false;
      const pruned = v.prune(s);
      const had = clientId in s.allocations;
      const hasConnections = v.connectionsOf(s, clientId).length > 0;
      if (!had && !hasConnections) return [false, pruned];
      if (instance !== undefined) {
        const a = s.allocations[clientId];
        const twinAsked = a?.instance !== undefined && a.instance !== instance;
        const twinLive = v.connectionsOf(s, clientId).some((c) => c.instance !== undefined && c.instance !== instance && v.connLive(c));
        if (twinAsked || twinLive) {
          kept = true;
          return [false, pruned];
        }
      }
      delete s.allocations[clientId];
      // Its tunnels may still be draining; their reports must not re-take the slot.
      s.released[clientId] = v.now;
      return [had, true];
    });
    if (kept) this.#log.info({ tokenHash: tokenLabel(hashedToken), clientId, instance }, 'release ignored: another process with this client id holds the slot (rolling update)');
    else this.#log.info({ tokenHash: tokenLabel(hashedToken), clientId, released }, 'allocation released');
    return released;
  }

  /**
   * server-starting, or a periodic re-registration. `openTunnels` > 0 (ours, optional) says the
   * server already holds tunnels: if we did not know it, it was running before us. Resolves
   * true when this store had no registration of it (we restarted empty, or it is new).
   */
  async registerServer(id: string, attrs: { peerUrl?: string; publicUrl?: string; healthCheckLink?: string; openTunnels?: number }): Promise<boolean> {
    const now = this.#clock();
    const known = (await this.#store.getServers()).find((s) => s.id === id)?.registeredAt !== undefined;
    const discoveredAt = (attrs.openTunnels ?? 0) > 0 ? now : 0;
    // A public URL the operator removed is forgotten at the next registration.
    const unset: Array<'stoppingSince' | 'downSince' | 'publicUrl'> = attrs.publicUrl ? ['stoppingSince', 'downSince'] : ['stoppingSince', 'downSince', 'publicUrl'];
    await this.#store.patchServer(id, { lastSeen: now, lastReport: now, registeredAt: now, peerUrl: attrs.peerUrl, publicUrl: attrs.publicUrl, healthCheckLink: attrs.healthCheckLink }, unset, { firstSeen: now, discoveredAt });
    this.#log.info({ serverId: id, peerUrl: attrs.peerUrl, publicUrl: attrs.publicUrl }, 'server registered');
    return !known;
  }

  async stopServer(id: string): Promise<void> {
    const now = this.#clock();
    await this.#store.patchServer(id, { lastReport: now }, [], { stoppingSince: now, firstSeen: now, lastSeen: now, discoveredAt: now });
    this.#log.info({ serverId: id }, 'server stopping: no new clients');
  }

  /** Activity from a server (any connection call) keeps it in placement; unknown ids register implicitly. */
  async touchServer(id: string, peerUrl?: string): Promise<void> {
    const now = this.#clock();
    await this.#store.patchServer(id, { lastSeen: now, lastReport: now, ...(peerUrl ? { peerUrl } : {}) }, [], { firstSeen: now, discoveredAt: now });
  }

  /** Health probe outcome (only servers that reported a peer URL are probed). */
  async probeResult(id: string, ok: boolean): Promise<void> {
    const now = this.#clock();
    if (ok) {
      await this.#store.patchServer(id, { lastSeen: now }, ['downSince']);
      return;
    }
    const s = (await this.#store.getServers()).find((x) => x.id === id);
    if (!s) return;
    // Keep the first failure time, unless the server reported since (it was alive then): a
    // failure now starts a new outage, so a later crash is noticed at once.
    if (s.downSince === undefined || (s.lastReport ?? -Infinity) > s.downSince) await this.#store.patchServer(id, { downSince: now });
  }

  /**
   * A server reports a tunnel of a client: connected, pinged (every ~25 s per tunnel) or
   * disconnected. Resolves true when the server never registered with this store (the
   * dispatcher restarted with an empty store, or the server started first): the API then asks
   * it to register again, so its peer URL and connections come back at once.
   */
  async reportConnection(serverId: string, hashedToken: string, clientId: string, event: ConnectionEvent, role?: string, peerUrl?: string, instance?: string): Promise<boolean> {
    await this.touchServer(serverId, peerUrl);
    const v = await this.#view();
    const unregistered = v.servers.get(serverId)?.registeredAt === undefined;
    const now = v.now;
    // Tunnels are counted per client process when the server names it, so the old pod's
    // disconnects during a rolling update leave its replacement's tunnels (same id) listed.
    const key = connectionKey(serverId, clientId, instance);
    const roleKey = role ?? '';
    await this.#updateToken(hashedToken, (s) => {
      let changed = v.prune(s);
      if (event === 'client-disconnected') {
        const c = s.connections[key];
        if (!c) return [undefined, changed];
        if (role !== undefined && c.roles[role]) delete c.roles[role];
        else if ((c.roles[''] ?? 0) > 0) c.roles[''] -= 1;
        else {
          const any = Object.keys(c.roles)[0];
          if (any !== undefined) delete c.roles[any];
        }
        for (const [r, n] of Object.entries(c.roles)) if (n <= 0) delete c.roles[r];
        c.lastSeen = now;
        if (tunnelCount(c) === 0) delete s.connections[key];
        const a = s.allocations[clientId];
        if (a && !v.clientLive(s, clientId)) {
          // Its last tunnel closed. On a live server that means the client went away: short lease.
          // On a stopping server the client is alive and moving: give it time to re-ask.
          if (v.isCandidate(serverId)) a.holdUntil = now + this.config.clientLeaseMs;
          else a.holdUntil = Math.max(a.holdUntil ?? 0, now + this.config.connectGraceMs);
        }
        return [undefined, true];
      }
      const c = (s.connections[key] ??= { serverId, clientId, ...(instance !== undefined ? { instance } : {}), roles: {}, firstSeen: now, lastSeen: now });
      if (event === 'client-connected') {
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
      changed = true;
      if (!(clientId in s.released)) {
        const a = s.allocations[clientId];
        if (!a) {
          // A connection we did not hand out (restart with an empty store, or a client that
          // gave up asking): it exists, so it holds a slot.
          s.allocations[clientId] = { serverId, grantedAt: now, reported: true };
          const n = Object.keys(s.allocations).length;
          if (n > this.config.maxClientsPerToken) {
            this.#log.warn({ tokenHash: tokenLabel(hashedToken), clientId, serverId, clients: n, max: this.config.maxClientsPerToken }, 'connection reported for a client without allocation; token is over its limit');
          }
        } else {
          delete a.holdUntil;
          // Follow reality: the client's tunnels are here, not where we sent it.
          if (a.serverId !== serverId && v.isCandidate(serverId) && !v.connectionsOf(s, clientId).some((x) => x.serverId === a.serverId && v.connLive(x))) {
            a.serverId = serverId;
          }
        }
      }
      return [undefined, changed];
    });
    return unregistered;
  }

  /** Every server the store knows, with its status (live servers first in the API). */
  async listServers(): Promise<ServerView[]> {
    const v = await this.#view();
    return [...v.servers.values()].map((s) => ({ ...s, status: v.serverStatus(s) })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Routing lookup: which servers hold live tunnels of this token, and for which clients. */
  async tokenConnections(hashedToken: string): Promise<TokenConnections> {
    return this.#tokenConnections(await this.#view(), hashedToken);
  }

  /** The routing lookup for every token that has live tunnels (one snapshot of the servers). */
  async allTokenConnections(): Promise<TokenConnections[]> {
    const v = await this.#view();
    const all = await Promise.all((await this.#store.listTokens()).map((t) => this.#tokenConnections(v, t)));
    return all.filter((t) => t.servers.length > 0);
  }

  async #tokenConnections(v: View, hashedToken: string): Promise<TokenConnections> {
    const { state } = await this.#store.readToken(hashedToken);
    const s = state ?? emptyTokenState();
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
  async tokenStats(): Promise<TokenStats[]> {
    const v = await this.#view();
    const out: TokenStats[] = [];
    for (const t of await this.#store.listTokens()) {
      const { state } = await this.#store.readToken(t);
      if (!state) continue;
      const live = Object.values(state.connections).filter((c) => v.connLive(c));
      const held = Object.entries(state.allocations).filter(([clientId, a]) => v.held(state, clientId, a)).length;
      out.push({ hashedToken: t, allocations: held, tunnels: live.reduce((n, c) => n + tunnelCount(c), 0), clients: new Set(live.map((c) => c.clientId)).size });
    }
    return out;
  }

  /**
   * Housekeeping: drop lapsed allocations, dead connections and long-expired servers, so state
   * returns to baseline after clients come and go. Decisions never depend on it having run.
   */
  async sweep(): Promise<void> {
    const v = await this.#view();
    for (const t of await this.#store.listTokens()) {
      await this.#updateToken(t, (s) => [undefined, v.prune(s)]);
    }
    for (const s of v.servers.values()) {
      if (v.now - s.lastSeen > this.config.serverTtlMs + this.config.connectGraceMs) {
        await this.#store.deleteServer(s.id);
        this.#log.info({ serverId: s.id }, 'server forgotten (no activity)');
      }
    }
  }
}
