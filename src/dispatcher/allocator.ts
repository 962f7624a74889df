import type { Logger } from '../observability/logger.js';
import { silentLogger } from '../observability/logger.js';
import { AllocationLog } from './allocation-log.js';
import { decideAllocation, decideRelease, type AllocationResult } from './allocation-policy.js';
import { applyConnectionReport, type ConnectionEvent, type ReportRules } from './connection-reports.js';
import { LivenessView, type LivenessConfig, type ServerView } from './liveness.js';
import { ServerRegistry, type ServerAttributes } from './server-registry.js';
import type { DispatcherStore } from './store.js';
import { TokenLimit, type TokenLimitConfig } from './token-limit.js';
import { tokenConnectionsOf, tokenStatsOf, type TokenConnections, type TokenStats } from './token-summaries.js';
import { updateTokenState } from './token-update.js';
import { connectionKey, emptyTokenState, tokenLabel } from './types.js';

/** Liveness times plus the per-token limit. */
export type AllocatorConfig = LivenessConfig & TokenLimitConfig;

export interface AllocatorDeps {
  store: DispatcherStore;
  /** Injectable clock (epoch ms) so tests move time instead of sleeping. */
  clock?: () => number;
  logger?: Logger;
}

/**
 * The dispatcher's decisions: allocations, the per-token limit, placement, and the registry
 * of servers and connections reported by servers. Every token decision is a read-compute-
 * compare-and-set loop over the token's whole state (updateTokenState), so two replicas
 * sharing a store can never both hand out the last slot. This class wires those mechanisms
 * to one store, clock and logger.
 */
export class Allocator {
  readonly #store: DispatcherStore;
  readonly #clock: () => number;
  readonly #log: Logger;
  readonly #limit: TokenLimit;
  readonly #servers: ServerRegistry;
  readonly #allocationLog: AllocationLog;
  readonly #reportRules: ReportRules;

  constructor(
    readonly config: AllocatorConfig,
    deps: AllocatorDeps,
  ) {
    this.#store = deps.store;
    this.#clock = deps.clock ?? Date.now;
    this.#log = deps.logger ?? silentLogger();
    this.#limit = new TokenLimit(config, this.#clock());
    this.#servers = new ServerRegistry(this.#store, this.#clock, this.#log);
    this.#allocationLog = new AllocationLog(this.#log);
    this.#reportRules = { maxClientsPerToken: config.maxClientsPerToken, clientLeaseMs: config.clientLeaseMs, connectGraceMs: config.connectGraceMs, log: this.#log };
  }

  get store(): DispatcherStore {
    return this.#store;
  }

  async #view(): Promise<LivenessView> {
    const servers = await this.#store.getServers();
    return new LivenessView(new Map(servers.map((s) => [s.id, s])), this.#clock(), this.config);
  }

  /** A client asks for its server (client-facing POST); `instance` names the asking process (our header). */
  async allocate(hashedToken: string, clientId: string, instance?: string): Promise<AllocationResult> {
    const v = await this.#view();
    const candidates = v.candidates();
    if (candidates.length === 0) {
      return { kind: 'unavailable', code: 'NO_LIVE_SERVER', retryAfterSeconds: this.config.retryAfterSeconds };
    }
    const req = { hashedToken, clientId, instance, candidates, connectGraceMs: this.config.connectGraceMs };
    const result = await updateTokenState(this.#store, hashedToken, (s) => decideAllocation(v, s, req, this.#limit));
    this.#allocationLog.outcome(hashedToken, clientId, result);
    return result;
  }

  /**
   * A client gives its slot back (client-facing DELETE, sent on SIGTERM). With `instance` (our
   * header) the release is ignored while another process of the same client id holds the slot.
   */
  async release(hashedToken: string, clientId: string, instance?: string): Promise<boolean> {
    const v = await this.#view();
    const { released, kept } = await updateTokenState(this.#store, hashedToken, (s) => decideRelease(v, s, clientId, instance));
    if (kept) this.#log.info({ tokenHash: tokenLabel(hashedToken), clientId, instance }, 'release ignored: another process with this client id holds the slot (rolling update)');
    else this.#log.info({ tokenHash: tokenLabel(hashedToken), clientId, released }, 'allocation released');
    return released;
  }

  /** server-starting, or a periodic re-registration (see ServerRegistry.register). */
  registerServer(id: string, attrs: ServerAttributes): Promise<boolean> {
    return this.#servers.register(id, attrs);
  }

  stopServer(id: string): Promise<void> {
    return this.#servers.stop(id);
  }

  /** Activity from a server (any connection call) keeps it in placement; unknown ids register implicitly. */
  touchServer(id: string, peerUrl?: string): Promise<void> {
    return this.#servers.touch(id, peerUrl);
  }

  /** Health probe outcome (only servers that reported a peer URL are probed). */
  probeResult(id: string, ok: boolean): Promise<void> {
    return this.#servers.probeResult(id, ok);
  }

  /**
   * A server reports a tunnel of a client: connected, pinged (every ~25 s per tunnel) or
   * disconnected. Resolves true when the server never registered with this store (the
   * dispatcher restarted with an empty store, or the server started first): the API then asks
   * it to register again, so its peer URL and connections come back at once.
   */
  async reportConnection(serverId: string, hashedToken: string, clientId: string, event: ConnectionEvent, role?: string, peerUrl?: string, instance?: string): Promise<boolean> {
    await this.#servers.touch(serverId, peerUrl);
    const v = await this.#view();
    const unregistered = v.servers.get(serverId)?.registeredAt === undefined;
    // Tunnels are counted per client process when the server names it, so the old pod's
    // disconnects during a rolling update leave its replacement's tunnels (same id) listed.
    const report = { serverId, hashedToken, clientId, event, role, instance, key: connectionKey(serverId, clientId, instance) };
    await updateTokenState(this.#store, hashedToken, (s) => applyConnectionReport(v, s, report, this.#reportRules));
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

  async #tokenConnections(v: LivenessView, hashedToken: string): Promise<TokenConnections> {
    const { state } = await this.#store.readToken(hashedToken);
    return tokenConnectionsOf(v, hashedToken, state ?? emptyTokenState());
  }

  /** Per-token counts for metrics. */
  async tokenStats(): Promise<TokenStats[]> {
    const v = await this.#view();
    const out: TokenStats[] = [];
    for (const t of await this.#store.listTokens()) {
      const { state } = await this.#store.readToken(t);
      if (!state) continue;
      out.push(tokenStatsOf(v, t, state));
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
      await updateTokenState(this.#store, t, (s) => [undefined, v.prune(s)]);
    }
    await this.#servers.forgetLapsed(v);
  }
}
