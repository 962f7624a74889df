import type { Egress } from '../http/egress.js';
import { describeError } from '../http/errors.js';
import { waitAtMost } from '../http/backoff.js';
import type { Logger } from '../observability/logger.js';
import { hashToken } from '../protocol/index.js';
import { TimedMarks } from './timed-marks.js';

/** A peer server holding tunnels of a token, as the dispatcher's routing lookup reports it. */
export interface PeerRoute {
  serverId: string;
  peerUrl: string;
  tunnels: number;
}

/** A broker server as the dispatcher lists it (`GET /internal/brokerservers`): where tunnels and answers for it go. */
export interface PeerServer {
  serverId: string;
  peerUrl: string;
  /** `live` or `stopping` (draining). */
  status: string;
}

export interface PeerRoutingConfig {
  dispatcherUrl: string;
  internalSecret?: string;
  selfServerId: string;
  refreshMs: number;
}


interface ServersDocument {
  data?: Array<{ id?: unknown; attributes?: { status?: unknown; peer_url?: unknown } }>;
}

/** How long a peer that could not be reached is skipped for tunnels and answers (its next try is cheap). */
const UNREACHABLE_FOR_MS = 10_000;
/** A lookup miss refreshes the cache at most this often, and waits for it at most this long. */
const MISS_REFRESH_EVERY_MS = 1000;
const MISS_WAIT_MS = 1000;

interface RoutingDocument {
  data?: Array<{
    id?: unknown;
    attributes?: { servers?: Array<{ server_id?: unknown; peer_url?: unknown; status?: unknown; connections?: Array<{ tunnels?: unknown }> }> };
  }>;
}

/**
 * In HA mode a token's clients sit on different servers (the dispatcher spreads them), so a
 * platform request reaching one server must be able to use the tunnels on the others. This
 * keeps a routing cache from the dispatcher (`GET /internal/connections`, one poll for all
 * tokens) and picks, per request, this server or a peer in proportion to their tunnels.
 */
export function createPeerRouting(config: PeerRoutingConfig, deps: { egress: Egress; logger: Logger; onServers?: (servers: ReadonlyMap<string, PeerServer>) => void }) {
  const { egress, logger } = deps;
  let routes = new Map<string, PeerRoute[]>();
  let servers = new Map<string, PeerServer>();
  const unreachable = new TimedMarks(UNREACHABLE_FOR_MS);
  let inFlight: Promise<void> | undefined;
  let lastMissRefresh = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let failing = false;
  /** Smooth weighted round robin state per token: target → current weight. */
  const wrr = new Map<string, Map<string, number>>();

  async function getJson(path: string): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (config.internalSecret) headers['x-broker-internal-secret'] = config.internalSecret;
    const res = await egress.request(`${config.dispatcherUrl}${path}`, { method: 'GET', headers, signal: AbortSignal.timeout(2500) });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`dispatcher answered ${res.statusCode} to GET ${path}`);
    }
    return res.body.json();
  }

  async function refreshServers(): Promise<void> {
    const doc = (await getJson('/internal/brokerservers')) as ServersDocument;
    const next = new Map<string, PeerServer>();
    for (const s of doc.data ?? []) {
      if (typeof s.id !== 'string' || typeof s.attributes?.peer_url !== 'string' || typeof s.attributes.status !== 'string') continue;
      next.set(s.id, { serverId: s.id, peerUrl: s.attributes.peer_url.replace(/\/+$/, ''), status: s.attributes.status });
    }
    servers = next;
    deps.onServers?.(next);
  }

  /** Both lookups; each keeps its last known state when it fails. Concurrent callers share one refresh. */
  function refresh(): Promise<void> {
    inFlight ??= Promise.all([refreshRoutes(), refreshServers().catch(() => undefined)])
      .then(() => undefined)
      .finally(() => (inFlight = undefined));
    return inFlight;
  }

  async function refreshRoutes(): Promise<void> {
    try {
      const doc = (await getJson('/internal/connections')) as RoutingDocument;
      const next = new Map<string, PeerRoute[]>();
      for (const token of doc.data ?? []) {
        if (typeof token.id !== 'string') continue;
        const peers: PeerRoute[] = [];
        for (const s of token.attributes?.servers ?? []) {
          if (typeof s.server_id !== 'string' || s.server_id === config.selfServerId) continue;
          if (typeof s.peer_url !== 'string' || s.status !== 'live') continue;
          const tunnels = (s.connections ?? []).reduce((n, c) => n + (typeof c.tunnels === 'number' ? c.tunnels : 1), 0);
          if (tunnels > 0) peers.push({ serverId: s.server_id, peerUrl: s.peer_url.replace(/\/+$/, ''), tunnels });
        }
        if (peers.length > 0) next.set(token.id, peers);
      }
      routes = next;
      if (failing) logger.info('routing lookup from the dispatcher works again');
      failing = false;
    } catch (err) {
      // Keep the last known routes: a dispatcher hiccup must not stop forwarding.
      if (!failing) logger.warn({ error: describeError(err) }, 'routing lookup from the dispatcher failed; using the last known routes');
      failing = true;
    }
  }

  /** A lookup miss refreshes the cache at most once a second, and waits for it at most MISS_WAIT_MS. */
  async function refreshOnMiss(): Promise<void> {
    const now = Date.now();
    if (now - lastMissRefresh < MISS_REFRESH_EVERY_MS && !inFlight) return;
    if (!inFlight) lastMissRefresh = now;
    await waitAtMost(refresh(), MISS_WAIT_MS);
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => void refresh().finally(schedule), config.refreshMs);
    timer.unref();
  }

  return {
    async start(): Promise<void> {
      await refresh();
      schedule();
    },
    stop(): void {
      stopped = true;
      clearTimeout(timer);
    },
    refresh,
    /**
     * The server `serverId` as the dispatcher lists it (live or stopping, with a peer URL). A miss
     * refreshes the cache (at most once a second) and waits for it briefly: a server that just
     * registered is found, an unknown one costs at most about a second.
     */
    async findServer(serverId: string): Promise<PeerServer | undefined> {
      const known = servers.get(serverId);
      if (known || stopped) return known;
      await refreshOnMiss();
      return servers.get(serverId);
    },
    /**
     * The token's peers; when none is known, one bounded refresh first: clients that connected
     * elsewhere since the last lookup are found instead of answering 404 no-connection.
     */
    async peersForOnMiss(token: string): Promise<PeerRoute[]> {
      const known = routes.get(hashToken(token));
      if (known || stopped) return known ?? [];
      await refreshOnMiss();
      return routes.get(hashToken(token)) ?? [];
    },
    /**
     * The token's peers after a bounded refresh: the last resort when this server's own tunnels
     * of the token just failed, and the cache (up to refreshMs old) may predate the peers' clients.
     */
    async peersAfterRefresh(token: string): Promise<PeerRoute[]> {
      if (!stopped) await refreshOnMiss();
      return routes.get(hashToken(token)) ?? [];
    },
    /** A peer that could not be reached is skipped for a while (tunnels and answers are served here meanwhile). */
    markUnreachable(serverId: string): void {
      unreachable.mark(serverId);
    },
    isUnreachable(serverId: string, now = Date.now()): boolean {
      return unreachable.has(serverId, now);
    },
    peersFor(token: string): PeerRoute[] {
      return routes.get(hashToken(token)) ?? [];
    },
    /**
     * The order in which to try targets for one request: first the target chosen by smooth
     * weighted round robin over {this server: its ready tunnels, each peer: its tunnels}, then
     * the rest as fallbacks (this server first). 'local' stands for this server.
     */
    order(token: string, localTunnels: number, peers: PeerRoute[]): Array<'local' | PeerRoute> {
      const targets: Array<{ key: string; weight: number; target: 'local' | PeerRoute }> = [];
      if (localTunnels > 0) targets.push({ key: 'local', weight: localTunnels, target: 'local' });
      for (const p of peers) targets.push({ key: p.serverId, weight: p.tunnels, target: p });
      if (targets.length === 0) return ['local'];
      let state = wrr.get(token);
      if (!state) {
        state = new Map();
        wrr.set(token, state);
      }
      for (const k of [...state.keys()]) if (!targets.some((t) => t.key === k)) state.delete(k);
      const total = targets.reduce((n, t) => n + t.weight, 0);
      let best = targets[0];
      for (const t of targets) {
        const cur = (state.get(t.key) ?? 0) + t.weight;
        state.set(t.key, cur);
        if (cur > (state.get(best.key) ?? 0)) best = t;
      }
      state.set(best.key, (state.get(best.key) ?? 0) - total);
      const rest = targets.filter((t) => t !== best).map((t) => t.target);
      rest.sort((a, b) => (a === 'local' ? -1 : b === 'local' ? 1 : 0));
      return [best.target, ...rest];
    },
  };
}

export type PeerRouting = ReturnType<typeof createPeerRouting>;
