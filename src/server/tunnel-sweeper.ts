import type { Logger } from '../observability/logger.js';
import type { Connection } from './connection.js';
import type { ConnectionPool } from './pool.js';
import type { ServerMetrics } from './metrics.js';
import type { TunnelsConfig } from './tunnels.js';

export type SweeperConfig = Pick<TunnelsConfig, 'pingIntervalMs' | 'handshakeTimeoutMs' | 'probeDelayMs' | 'probeTimeoutMs'>;

export interface SweeperDeps {
  pool: ConnectionPool<Connection>;
  metrics: ServerMetrics;
  logger: Logger;
}

interface SweepLimits {
  handshakeTimeoutMs: number;
  /** Silent this long → the tunnel is dropped (Primus' server timeout is 35 s with 25 s pings). */
  silenceLimitMs: number;
  /** A tunnel with relays in flight and silent this long is probed; unanswered this long, it is passed over. */
  probeAfterMs: number;
  probeTimeoutMs: number;
}

/**
 * Sweeps the live tunnels periodically: closes those that never identified or went silent,
 * probes busy silent ones, and reports those that miss the probe. Returns the interval.
 */
export function startTunnelSweeper(config: SweeperConfig, live: ReadonlySet<Connection>, deps: SweeperDeps): NodeJS.Timeout {
  const limits: SweepLimits = {
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    silenceLimitMs: config.pingIntervalMs + 10_000,
    probeAfterMs: config.probeDelayMs,
    probeTimeoutMs: config.probeTimeoutMs,
  };
  // Often enough that a hang is noticed within about probe delay + probe timeout.
  const sweepMs = Math.min(1000, Math.max(50, Math.floor(Math.min(config.pingIntervalMs / 5, config.probeDelayMs / 3, config.probeTimeoutMs / 3))));
  let lastSweep = Date.now();
  const sweeper = setInterval(() => {
    const now = Date.now();
    // A sweep this late means this process did not run for a while: no tunnel is judged on that time.
    const stalled = now - lastSweep - sweepMs;
    lastSweep = now;
    if (stalled > sweepMs) for (const conn of live) conn.postponeProbe(stalled);
    for (const conn of live) sweepTunnel(conn, now, limits, deps);
    deps.pool.sweep(now);
  }, sweepMs);
  sweeper.unref();
  return sweeper;
}

function sweepTunnel(conn: Connection, now: number, limits: SweepLimits, deps: SweeperDeps): void {
  const { metrics, logger } = deps;
  if (conn.state === 'connecting' && now - conn.openedAt > limits.handshakeTimeoutMs) {
    logger.warn({ connection: conn.id }, 'tunnel did not identify in time; closing');
    conn.transport.close();
  } else if (conn.silentFor(now) > limits.silenceLimitMs) {
    logger.warn({ connection: conn.id, silentMs: conn.silentFor(now) }, 'tunnel silent for too long; closing');
    conn.transport.close();
    // If the transport never reports back, still take it out of the pool.
    conn.closed('silent');
  } else if (conn.state === 'ready' && conn.inFlight > 0 && conn.silentFor(now) > limits.probeAfterMs) {
    // Busy and silent: an extra ping. A live client answers at once; a hung one does not and
    // gets no new requests (pool) long before the heartbeat would close its tunnel.
    conn.probe(limits.probeTimeoutMs, now);
    if (conn.unresponsive(now) && conn.loggedProbeAt !== conn.probedAt) {
      conn.loggedProbeAt = conn.probedAt;
      metrics.probeMisses.inc();
      logger.warn({ connection: conn.id, silentMs: conn.silentFor(now), inFlight: conn.inFlight }, 'tunnel did not answer a probe while busy (client hung?); no new requests go to it until it does, idempotent ones on it go elsewhere');
      conn.reportUnresponsive();
    }
  }
}
