import type { Duplex } from 'node:stream';
import type { ServerConfig } from '../../config/server.js';
import type { Egress } from '../../http/egress.js';
import type { Logger } from '../../observability/logger.js';
import type { Registry } from '../../observability/metrics.js';
import type { Connection } from '../connection.js';
import type { ServerMetrics } from '../metrics.js';
import type { PeerLiveness } from '../peer-liveness.js';
import type { PeerRouting } from '../peer-routing.js';
import type { ConnectionPool } from '../pool.js';
import type { PendingAnswers, PlatformRelay, RelayDeps } from '../relay.js';
import type { TunnelAuth } from '../tunnel-auth.js';
import type { Tunnels } from '../tunnels.js';

/** Where the server is in its life: routes read it per request, start and drain set it. */
export interface ServerLifecycle {
  /** The first routing lookup is done (or there is none): /readyz may say ready. */
  started: boolean;
  /** SIGTERM came: no new tunnels or requests, those in flight finish. */
  draining: boolean;
}

/**
 * The parts every route group is built from, made once by createServer. The sets are what a
 * drain waits on: platform relays, forwards to peers, tunnels of peers piped through here.
 */
export interface ServerParts {
  config: ServerConfig;
  logger: Logger;
  egress: Egress;
  registry: Registry;
  metrics: ServerMetrics;
  pool: ConnectionPool<Connection>;
  pending: PendingAnswers;
  tunnels: Tunnels;
  /** HA mode: the dispatcher's routing cache (peers holding tunnels of a token). */
  routing: PeerRouting | undefined;
  /** HA mode: probes of peers holding a forwarded request too long (a hung one is hedged). */
  liveness: PeerLiveness | undefined;
  lifecycle: ServerLifecycle;
  /** Mandatory-auth mode: the handshake gate (undefined: every tunnel is accepted). */
  tunnelAuth: TunnelAuth | undefined;
  relayDeps: RelayDeps;
  relays: Set<PlatformRelay>;
  forwards: Set<Promise<unknown>>;
  passingTunnels: Set<Duplex>;
}
