import type { Egress } from '../http/egress.js';
import { describeError } from '../http/errors.js';
import { waitAtMost } from '../http/backoff.js';
import type { Logger } from '../observability/logger.js';
import { TimedMarks } from './timed-marks.js';
import { getDispatcherJson, routesFrom, serversFrom } from './peer-lookups.js';
import type { PeerRoute, PeerRoutingConfig, PeerServer } from './peer-routing.js';

/** A lookup miss refreshes the cache at most this often, and waits for it at most this long. */
const MISS_REFRESH_EVERY_MS = 1000;
const MISS_WAIT_MS = 1000;
/** A token whose tunnels the dispatcher listed this recently is "in motion" when none is found (see hadTunnelsLately). */
const LATELY_MS = 10_000;

/**
 * The dispatcher's routing and server lists, polled every refreshMs (one poll for all tokens)
 * and refreshed early, boundedly, on a miss.
 */
export class PeerRoutingCache {
  #routes = new Map<string, PeerRoute[]>();
  #servers = new Map<string, PeerServer>();
  readonly #lately = new TimedMarks(LATELY_MS);
  #inFlight: Promise<void> | undefined;
  #lastMissRefresh = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #failing = false;

  constructor(
    private readonly config: PeerRoutingConfig,
    private readonly deps: { egress: Egress; logger: Logger; onServers?: (servers: ReadonlyMap<string, PeerServer>) => void },
  ) {}

  get stopped(): boolean {
    return this.#stopped;
  }

  /** The peers of a token hash, as last looked up. */
  routes(tokenHash: string): PeerRoute[] | undefined {
    return this.#routes.get(tokenHash);
  }

  /**
   * Whether the dispatcher listed tunnels of the token (on any server, draining ones too) in
   * the last LATELY_MS: a token with none now is moving (a server draining, its clients
   * reconnecting elsewhere), not gone.
   */
  hadTunnelsLately(tokenHash: string): boolean {
    return this.#lately.has(tokenHash);
  }

  server(serverId: string): PeerServer | undefined {
    return this.#servers.get(serverId);
  }

  async start(): Promise<void> {
    await this.refresh();
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** Both lookups; each keeps its last known state when it fails. Concurrent callers share one refresh. */
  refresh(): Promise<void> {
    this.#inFlight ??= Promise.all([this.#refreshRoutes(), this.#refreshServers().catch(() => undefined)])
      .then(() => undefined)
      .finally(() => (this.#inFlight = undefined));
    return this.#inFlight;
  }

  /** A lookup miss refreshes the cache at most once a second, and waits for it at most MISS_WAIT_MS. */
  async refreshOnMiss(): Promise<void> {
    const now = Date.now();
    if (now - this.#lastMissRefresh < MISS_REFRESH_EVERY_MS && !this.#inFlight) return;
    if (!this.#inFlight) this.#lastMissRefresh = now;
    await waitAtMost(this.refresh(), MISS_WAIT_MS);
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.refresh().finally(() => this.#schedule()), this.config.refreshMs);
    this.#timer.unref();
  }

  async #refreshServers(): Promise<void> {
    const next = serversFrom(await getDispatcherJson(this.deps.egress, this.config, '/internal/brokerservers'));
    this.#servers = next;
    this.deps.onServers?.(next);
  }

  async #refreshRoutes(): Promise<void> {
    const { logger } = this.deps;
    try {
      const withTunnels = new Set<string>();
      this.#routes = routesFrom(await getDispatcherJson(this.deps.egress, this.config, '/internal/connections'), this.config.selfServerId, withTunnels);
      const now = Date.now();
      this.#lately.sweep(now);
      for (const hash of withTunnels) this.#lately.mark(hash, now);
      if (this.#failing) logger.info('routing lookup from the dispatcher works again');
      this.#failing = false;
    } catch (err) {
      // Keep the last known routes: a dispatcher hiccup must not stop forwarding.
      if (!this.#failing) logger.warn({ error: describeError(err) }, 'routing lookup from the dispatcher failed; using the last known routes');
      this.#failing = true;
    }
  }
}
