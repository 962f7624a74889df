import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket as EngineSocket } from 'engine.io';
import type { Logger, SecretScrubber } from '../observability/logger.js';
import { waitAtMost } from '../http/backoff.js';
import { refuseBody } from '../http/server-helpers.js';
import { FAILURES } from '../protocol/failures.js';
import { createWriteBatcher } from '../http/write-batch.js';
import type { Connection, ConnectionHooks } from './connection.js';
import type { ConnectionPool } from './pool.js';
import type { DispatcherReporter } from './dispatcher-reporter.js';
import type { ServerMetrics } from './metrics.js';
import type { WebhookForwarder } from './webhooks.js';
import type { PendingAnswers } from './pending-answers.js';
import type { TunnelAuth } from './tunnel-auth.js';
import { acceptTunnel, createTunnelEngine } from './tunnel-accept.js';
import { createIdentify } from './tunnel-identify.js';
import { tunnelEventHooks } from './tunnel-events.js';
import { TunnelRegistry } from './tunnel-registry.js';
import { startTunnelSweeper } from './tunnel-sweeper.js';
import { startStaleCredentialsWatchdog } from './stale-credentials.js';

// The tunnels' mechanisms, wired by createTunnels: engine.io acceptance, identify, the events of
// an identified tunnel, the registry of live tunnels (and their drain), the liveness sweep.
export { tunnelTokenOf } from './tunnel-accept.js';
export { netSocketOf } from './engine-transport.js';

export interface TunnelsConfig {
  pingIntervalMs: number;
  pingTimeoutMs: number;
  maxFrameBytes: number;
  handshakeTimeoutMs: number;
  /** A busy tunnel silent this long is probed (an extra ping). */
  probeDelayMs: number;
  /** A probe unanswered this long: the tunnel is unresponsive (no new requests, idempotent ones on it hedged). */
  probeTimeoutMs: number;
  minimalSupportedVersion: string;
  minimalRecommendedVersion: string;
  /** When set, engine.io session ids name this server (see tunnel-routing.ts). */
  serverId?: string;
  /** Mandatory-auth mode: the stale-credential watchdog's interval and age limit. */
  mandatoryAuth?: { staleSweepMs: number; staleAfterMs: number };
}

export interface TunnelsDeps {
  pool: ConnectionPool<Connection>;
  /** Requests waiting for an answer, for answers that come over the tunnel. */
  pending: PendingAnswers;
  dispatcher: DispatcherReporter;
  webhooks: WebhookForwarder;
  metrics: ServerMetrics;
  logger: Logger;
  scrubber?: SecretScrubber;
  /** Mandatory-auth mode: the handshake gate (tunnels without its validation are refused). */
  tunnelAuth?: TunnelAuth;
}

/**
 * Accepts tunnels: engine.io v4 (polling + upgrade, direct websocket, EIO3 tolerated) under
 * /primus/<token>/, Primus framing on top, one Connection per tunnel.
 */
export function createTunnels(config: TunnelsConfig, deps: TunnelsDeps) {
  const { pool, pending, dispatcher, webhooks, metrics, logger } = deps;
  const batchWrites = createWriteBatcher();
  const engine = createTunnelEngine(config);
  const registry = new TunnelRegistry({ pool, dispatcher, metrics, logger });
  const { minimalSupportedVersion, minimalRecommendedVersion } = config;
  const hooks: ConnectionHooks = {
    onIdentify: createIdentify({ pool, dispatcher, registry, logger, scrubber: deps.scrubber, minimalSupportedVersion, minimalRecommendedVersion }),
    ...tunnelEventHooks({ pending, dispatcher, webhooks, registry, metrics, logger }),
    onClosed: (conn, reason) => registry.closed(conn, reason),
  };
  const acceptDeps = { hooks, registry, batchWrites, logger, maxFrameBytes: config.maxFrameBytes, tunnelAuth: deps.tunnelAuth };
  engine.on('connection', (socket: EngineSocket) => acceptTunnel(socket, acceptDeps));
  engine.on('connection_error', (e: { code: number; message: string }) => {
    logger.debug({ code: e.code, message: e.message }, 'tunnel handshake refused');
  });
  const live = registry.live;
  const sweeper = startTunnelSweeper(config, live, { pool, metrics, logger });
  const watchdog = deps.tunnelAuth && config.mandatoryAuth ? startStaleCredentialsWatchdog(config.mandatoryAuth, live, { logger, metrics }) : undefined;

  return {
    handleRequest(req: IncomingMessage, res: ServerResponse): void {
      // A long-polling upload declared above the frame cap is refused before engine.io reads it
      // (engine.io would read it all and answer a bare 413).
      const declared = Number(req.headers['content-length']);
      if (req.method === 'POST' && Number.isFinite(declared) && declared > config.maxFrameBytes) {
        logger.warn({ bytes: declared, limitBytes: config.maxFrameBytes }, 'tunnel message larger than SOCKET_MAX_RESPONSE_LENGTH refused');
        return refuseBody(req, res, FAILURES.FRAME_TOO_LARGE, { ok: false, message: `tunnel message exceeds ${config.maxFrameBytes} bytes` });
      }
      engine.handleRequest(req, res);
    },
    handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
      engine.handleUpgrade(req, socket, head);
    },
    connections(): ReadonlySet<Connection> {
      return live;
    },
    /** Re-sends client-connected for every identified tunnel (after the dispatcher forgot this server). */
    reannounce(): void {
      registry.reannounce();
    },
    /** Drain: no new relays; every client is told to go elsewhere once its tunnel holds nothing. */
    drainAll(reason: string): void {
      registry.drainAll(reason);
    },
    /** Drains the tunnels that pass through peer `peerId` (it is stopping); returns how many were newly drained. */
    drainVia(peerId: string, reason: string): number {
      return registry.drainVia(peerId, reason);
    },
    /**
     * Closes every tunnel. Clients already sent away first get `graceMs` to take their
     * primus::server::close and 4001 (written once the frames before them are out), so the
     * engine's plain close does not overtake them.
     */
    async close(graceMs = 1000): Promise<void> {
      clearInterval(sweeper);
      clearInterval(watchdog);
      const leaving = [...live].filter((c) => c.sentAway && c.state !== 'closed').map((c) => c.whenClosed);
      if (leaving.length > 0) await waitAtMost(Promise.all(leaving), graceMs);
      engine.close();
      for (const conn of live) conn.closed('server stopped');
    },
  };
}

export type Tunnels = ReturnType<typeof createTunnels>;
