import { hashToken, maskToken } from '../protocol/index.js';
import type { Logger } from '../observability/logger.js';
import type { Connection } from './connection.js';
import type { ConnectionPool } from './pool.js';
import type { DispatcherReporter } from './dispatcher-reporter.js';
import type { ServerMetrics } from './metrics.js';

export interface TunnelRegistryDeps {
  pool: ConnectionPool<Connection>;
  dispatcher: DispatcherReporter;
  metrics: ServerMetrics;
  logger: Logger;
}

/**
 * The tunnels this server holds: every live one, those a peer server passes through, the
 * ready-connections gauge per token, and the drain that sends them all away.
 */
export class TunnelRegistry {
  readonly live = new Set<Connection>();
  /** Tunnels a peer server forwarded here (x-broker-forwarded-by): tunnel → that peer's id. */
  readonly #viaPeer = new Map<Connection, string>();
  #drainReason: string | undefined;

  constructor(private readonly deps: TunnelRegistryDeps) {}

  /** Set once the server drains: a tunnel identifying after that is sent away too. */
  get drainReason(): string | undefined {
    return this.#drainReason;
  }

  /** A new tunnel; `forwardedBy` is the peer it came through, if any. */
  add(conn: Connection, forwardedBy: string | undefined): void {
    this.live.add(conn);
    if (forwardedBy !== undefined) {
      this.#viaPeer.set(conn, forwardedBy);
      void conn.whenClosed.then(() => this.#viaPeer.delete(conn));
    }
  }

  updateGauge(token: string): void {
    const { pool, metrics } = this.deps;
    const ready = pool.members(token).filter((c) => c.state === 'ready').length;
    // A token without connections drops its series, so label cardinality follows live tokens.
    if (ready === 0) metrics.connections.remove({ token_hash: hashToken(token) });
    else metrics.connections.set({ token_hash: hashToken(token) }, ready);
  }

  /** The tunnel closed: out of the pool, its series and its dispatcher record gone. */
  closed(conn: Connection, reason: string): void {
    const { pool, metrics, dispatcher, logger } = this.deps;
    this.live.delete(conn);
    const identity = conn.identity;
    if (!identity) {
      logger.debug({ connection: conn.id, reason }, 'tunnel closed before identifying');
      return;
    }
    const remaining = pool.remove(identity.token, conn);
    this.updateGauge(identity.token);
    // Per-connection series go with their connection (unless a twin with the same id is live).
    if (![...this.live].some((c) => c.id === conn.id)) metrics.relayed.remove({ connection: conn.id });
    dispatcher.clientDisconnected(identity.token, identity.clientId, identity.role, identity.instance);
    logger.info({ connection: conn.id, maskedToken: maskToken(identity.token), reason, remaining }, 'client connection closed');
  }

  /** Re-sends client-connected for every identified tunnel (after the dispatcher forgot this server). */
  reannounce(): void {
    for (const conn of this.live) {
      if (conn.identity && (conn.state === 'ready' || conn.state === 'draining') && !conn.terminating) {
        this.deps.dispatcher.clientConnected(conn.identity.token, conn.identity.clientId, conn.identity.version, conn.identity.role, conn.identity.instance);
      }
    }
  }

  /** Drain: no new relays; every client is told to go elsewhere once its tunnel holds nothing. */
  drainAll(reason: string): void {
    this.#drainReason = reason;
    for (const conn of this.live) {
      conn.drain();
      conn.sendAwayWhenIdle(reason);
    }
  }

  /**
   * Drains the tunnels that pass through peer `peerId` (it is stopping): no new relays on them,
   * and each is sent away once idle, so its client reconnects through the balancer to a live
   * server before the peer cuts the piped socket. Returns how many were newly drained.
   */
  drainVia(peerId: string, reason: string): number {
    let count = 0;
    for (const [conn, by] of this.#viaPeer) {
      // Not yet handshaken tunnels are left for the next refresh (identification sets them ready).
      if (by !== peerId || conn.state !== 'ready') continue;
      conn.drain();
      conn.sendAwayWhenIdle(reason);
      count++;
    }
    return count;
  }
}
