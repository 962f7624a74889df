import type { Egress } from '../http/egress.js';
import type { Logger } from '../observability/logger.js';
import { hashToken } from '../protocol/index.js';
import { TimedMarks } from './timed-marks.js';
import { PeerRoutingCache } from './peer-routing-cache.js';
import { orderTargets, type PeerOrderState } from './peer-order.js';

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

/** How long a peer that could not be reached is skipped for tunnels and answers (its next try is cheap). */
const UNREACHABLE_FOR_MS = 10_000;

/**
 * In HA mode a token's clients sit on different servers (the dispatcher spreads them), so a
 * platform request reaching one server must be able to use the tunnels on the others. This
 * keeps a routing cache from the dispatcher (`GET /internal/connections`, one poll for all
 * tokens) and picks, per request, this server or a peer in proportion to their tunnels.
 */
export function createPeerRouting(config: PeerRoutingConfig, deps: { egress: Egress; logger: Logger; onServers?: (servers: ReadonlyMap<string, PeerServer>) => void }) {
  const cache = new PeerRoutingCache(config, deps);
  const unreachable = new TimedMarks(UNREACHABLE_FOR_MS);
  const wrr: PeerOrderState = new Map();

  return {
    start: (): Promise<void> => cache.start(),
    stop: (): void => cache.stop(),
    refresh: (): Promise<void> => cache.refresh(),
    /**
     * The server `serverId` as the dispatcher lists it (live or stopping, with a peer URL). A miss
     * refreshes the cache (at most once a second) and waits for it briefly: a server that just
     * registered is found, an unknown one costs at most about a second.
     */
    async findServer(serverId: string): Promise<PeerServer | undefined> {
      const known = cache.server(serverId);
      if (known || cache.stopped) return known;
      await cache.refreshOnMiss();
      return cache.server(serverId);
    },
    /**
     * The token's peers; when none is known, one bounded refresh first: clients that connected
     * elsewhere since the last lookup are found instead of answering 404 no-connection.
     */
    async peersForOnMiss(token: string): Promise<PeerRoute[]> {
      const known = cache.routes(hashToken(token));
      if (known || cache.stopped) return known ?? [];
      await cache.refreshOnMiss();
      return cache.routes(hashToken(token)) ?? [];
    },
    /**
     * The token's peers after a bounded refresh: the last resort when this server's own tunnels
     * of the token just failed, and the cache (up to refreshMs old) may predate the peers' clients.
     */
    async peersAfterRefresh(token: string): Promise<PeerRoute[]> {
      if (!cache.stopped) await cache.refreshOnMiss();
      return cache.routes(hashToken(token)) ?? [];
    },
    /** A peer that could not be reached is skipped for a while (tunnels and answers are served here meanwhile). */
    markUnreachable(serverId: string): void {
      unreachable.mark(serverId);
    },
    isUnreachable(serverId: string, now = Date.now()): boolean {
      return unreachable.has(serverId, now);
    },
    /** See PeerRoutingCache.hadTunnelsLately: no tunnel of the token now is worth a short wait rather than a 404. */
    tunnelsMoving(token: string): boolean {
      return cache.hadTunnelsLately(hashToken(token));
    },
    peersFor(token: string): PeerRoute[] {
      return cache.routes(hashToken(token)) ?? [];
    },
    /** See orderTargets: the smooth weighted round robin over this server and the token's peers. */
    order(token: string, localTunnels: number, peers: PeerRoute[]): Array<'local' | PeerRoute> {
      return orderTargets(wrr, token, localTunnels, peers);
    },
  };
}

export type PeerRouting = ReturnType<typeof createPeerRouting>;
