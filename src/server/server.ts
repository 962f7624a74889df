import type { ServerConfig } from '../config/server.js';
import type { Egress } from '../http/egress.js';
import { listen } from '../http/server-helpers.js';
import type { Logger, SecretScrubber } from '../observability/logger.js';
import type { Registry } from '../observability/metrics.js';
import { VERSION } from '../version.js';
import type { Connection } from './connection.js';
import { createCredentialValidator } from './credential-validation.js';
import { createDispatcherReporter, noopDispatcherReporter, type DispatcherReporter } from './dispatcher-reporter.js';
import { drainAndClose } from './drain.js';
import { createServerMetrics, type ServerMetrics } from './metrics.js';
import { createPeerLiveness } from './peer-liveness.js';
import { createPeerRouting, type PeerServer } from './peer-routing.js';
import { ConnectionPool } from './pool.js';
import { PendingAnswers, createRelayDeadlines, type PlatformRelay } from './relay.js';
import type { ServerLifecycle, ServerParts } from './routes/context.js';
import { createAuthRefresh } from './routes/auth-refresh.js';
import { createHttpServer } from './routes/http-server.js';
import { createPeerHops } from './routes/peer-hops.js';
import { createPlatformRoutes } from './routes/platform-api.js';
import { createResponseIntake } from './routes/response-intake.js';
import { createRouter } from './routes/router.js';
import { createStatusRoutes } from './routes/status-routes.js';
import { createTunnelEndpoint } from './routes/tunnel-endpoint.js';
import { createTunnelAuth } from './tunnel-auth.js';
import { createTunnels, type Tunnels } from './tunnels.js';
import { createWebhookForwarder } from './webhooks.js';

export interface ServerDeps {
  logger: Logger;
  egress: Egress;
  registry: Registry;
  scrubber?: SecretScrubber;
  /** Replaces the dispatcher reporter built from config (tests). */
  dispatcher?: DispatcherReporter;
  /** Mandatory auth with GATEWAY_TLS_OPTION_*: the egress of the handshake validation (default `egress`). */
  gatewayEgress?: Egress;
}

export interface BrokerServer {
  /** Binds the port; resolves with the bound port. */
  start(): Promise<number>;
  /** SIGTERM path: drain within the grace period, then close everything. */
  stop(reason?: string): Promise<void>;
  readonly port: number;
  readonly draining: boolean;
  readonly pool: ConnectionPool<Connection>;
  readonly metrics: ServerMetrics;
}

/** The dispatcher reporter from config: registration, heartbeats and connection reports (none without a dispatcher URL). */
function reporterFor(config: ServerConfig, deps: ServerDeps, metrics: ServerMetrics, pool: ConnectionPool<Connection>, tunnels: () => Tunnels): DispatcherReporter {
  if (deps.dispatcher) return deps.dispatcher;
  if (!config.dispatcherUrl) return noopDispatcherReporter();
  const { dispatcherUrl, dispatcherVersion, serverId, healthCheckLink, peerUrl, publicUrl, internalSecret, registerIntervalMs } = config;
  return createDispatcherReporter(
    { dispatcherUrl, dispatcherVersion, serverId, healthCheckLink, peerUrl, publicUrl, internalSecret, registerIntervalMs },
    { egress: deps.egress, logger: deps.logger, metrics, openTunnels: () => pool.all().length, reannounce: () => tunnels().reannounce() },
  );
}

/**
 * The broker server's composition root: builds the parts (pool, tunnels, routing, reporter),
 * mounts the route groups (routes/) on one HTTP listener, and runs start and drain.
 */
export function createServer(config: ServerConfig, deps: ServerDeps): BrokerServer {
  const { logger, egress, registry } = deps;
  const metrics = createServerMetrics(registry);
  const pool = new ConnectionPool<Connection>({ lateAfterMs: config.pingIntervalMs + 5_000 });
  const pending = new PendingAnswers();
  const dispatcher = reporterFor(config, deps, metrics, pool, () => tunnels);
  const webhooks = createWebhookForwarder({ privateRules: config.privateRules, egress, logger, metrics, timeoutMs: config.webhookTimeoutMs, responseLimitBytes: config.webhookResponseLimitBytes });
  const validator = config.mandatoryAuth ? createCredentialValidator(config.mandatoryAuth, { egress, gatewayEgress: deps.gatewayEgress, logger }) : undefined;
  const tunnelAuth = validator ? createTunnelAuth(validator, metrics) : undefined;
  const tunnels = createTunnels(config, { pool, pending, dispatcher, webhooks, metrics, logger, scrubber: deps.scrubber, tunnelAuth });
  const routing =
    config.peerRouting && config.dispatcherUrl
      ? createPeerRouting({ dispatcherUrl: config.dispatcherUrl, internalSecret: config.internalSecret, selfServerId: config.serverId, refreshMs: config.routingRefreshMs }, { egress, logger, onServers: drainTunnelsViaStoppingPeers })
      : undefined;
  const lifecycle: ServerLifecycle = { started: false, draining: false };
  const relayDeps = { pool, pending, metrics, logger, requestTimeoutMs: config.requestTimeoutMs, retryBufferBytes: config.retryBufferBytes, answerGraceMs: config.answerGraceMs, reconnectWaitMs: config.reconnectWaitMs, serverId: config.serverId, deadlines: createRelayDeadlines(config.requestTimeoutMs) };
  const parts: ServerParts = {
    config, logger, egress, registry, metrics, pool, pending, tunnels, routing, lifecycle, tunnelAuth, relayDeps,
    liveness: routing ? createPeerLiveness({ timeoutMs: config.probeTimeoutMs }, { egress }) : undefined,
    relays: new Set<PlatformRelay>(),
    forwards: new Set<Promise<unknown>>(),
    passingTunnels: new Set(),
  };

  /**
   * A peer that is stopping will soon cut the tunnels it pipes to us: drain them now, so their
   * requests in flight finish and their clients reconnect (through the balancer) before the cut.
   */
  function drainTunnelsViaStoppingPeers(servers: ReadonlyMap<string, PeerServer>): void {
    for (const server of servers.values()) {
      if (server.status !== 'stopping' || server.serverId === config.serverId) continue;
      const count = tunnels.drainVia(server.serverId, 'peer-draining');
      if (count > 0) logger.info({ peer: server.serverId, status: server.status, tunnels: count }, 'peer server is stopping: draining the tunnels that pass through it');
    }
  }

  const hops = createPeerHops(parts);
  const tunnelEndpoint = createTunnelEndpoint(parts, hops);
  const onRequest = createRouter(parts, {
    platform: createPlatformRoutes(parts),
    tunnel: tunnelEndpoint,
    responseData: createResponseIntake(parts, hops),
    authRefresh: validator ? createAuthRefresh(parts, hops, validator) : undefined,
    status: createStatusRoutes(parts),
  });
  const http = createHttpServer(config, logger, onRequest, tunnelEndpoint.upgrade);
  let boundPort = 0;
  let stopping: Promise<void> | undefined;

  return {
    async start() {
      dispatcher.serverStarting();
      boundPort = await listen(http, config.port, config.host);
      // Ready once the first routing lookup is done (or failed): before it, a server holding no
      // tunnel of a token would answer 404 for clients that are connected to its peers.
      if (routing) void routing.start().finally(() => (lifecycle.started = true));
      else lifecycle.started = true;
      logger.info({ port: boundPort, serverId: config.serverId, accept: config.acceptPath ?? null, dispatcher: Boolean(config.dispatcherUrl), tls: config.tls !== undefined, mandatoryAuth: config.mandatoryAuth !== undefined, version: VERSION }, 'broker server listening');
      return boundPort;
    },
    stop(reason = 'stop') {
      stopping ??= drainAndClose(parts, { http, dispatcher }, reason);
      return stopping;
    },
    get port() {
      return boundPort;
    },
    get draining() {
      return lifecycle.draining;
    },
    pool,
    metrics,
  };
}
