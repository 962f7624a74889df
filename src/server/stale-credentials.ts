import type { Logger } from '../observability/logger.js';
import { encodeServerClose, maskToken } from '../protocol/index.js';
import type { Connection } from './connection.js';
import type { ServerMetrics } from './metrics.js';

/**
 * Ends a tunnel whose credentials no longer hold, as snyk-broker's server does (Primus
 * `spark.end()`): no new relays on it, `primus::server::close`, then the transport is closed.
 */
export function endUnauthorizedTunnel(conn: Connection): void {
  if (conn.state === 'closed') return;
  conn.drain();
  try {
    conn.transport.send(encodeServerClose(), () => conn.transport.close());
  } catch {
    conn.transport.close();
  }
}

/** The tunnels validated `maxAgeMs` or longer ago (a tunnel without credentials is not judged here). */
export function staleTunnels(live: Iterable<Connection>, now: number, maxAgeMs: number): Connection[] {
  const out: Connection[] = [];
  for (const conn of live) {
    if (conn.state !== 'closed' && conn.credentials && now - conn.credentials.credsValidationTime >= maxAgeMs) out.push(conn);
  }
  return out;
}

/**
 * Mandatory auth's watchdog: every `staleSweepMs` it ends the tunnels whose last validation
 * (handshake or auth refresh) is `staleAfterMs` old or more; a client that keeps refreshing is
 * never touched. Returns the interval (unref'd; the caller clears it on stop).
 */
export function startStaleCredentialsWatchdog(config: { staleSweepMs: number; staleAfterMs: number }, live: ReadonlySet<Connection>, deps: { logger: Logger; metrics: ServerMetrics }): NodeJS.Timeout {
  const { logger, metrics } = deps;
  const timer = setInterval(() => {
    for (const conn of staleTunnels(live, Date.now(), config.staleAfterMs)) {
      logger.info({ connection: conn.id, maskedToken: maskToken(conn.pathToken), credsLastValidated: new Date(conn.credentials!.credsValidationTime).toISOString() }, 'ending tunnel: its credentials were not revalidated in time (stale auth)');
      metrics.authChecks.inc({ kind: 'stale', outcome: 'closed' });
      endUnauthorizedTunnel(conn);
    }
  }, config.staleSweepMs);
  timer.unref();
  return timer;
}
