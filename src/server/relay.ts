import { randomUUID } from 'node:crypto';
import { createStreamingId } from './tunnel-routing.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RelayRequest, ResponseHead } from '../protocol/index.js';
import { describeError } from '../http/errors.js';
import { sendFailure } from '../http/server-helpers.js';
import { FAILURES, RETRY_ELSEWHERE_HEADER, type Failure } from '../protocol/failures.js';
import type { Logger } from '../observability/logger.js';
import type { Connection } from './connection.js';
import type { ConnectionPool, Selection } from './pool.js';
import type { ServerMetrics } from './metrics.js';
import { answerHeaders } from './platform-request.js';
import type { PendingAnswers } from './pending-answers.js';
import { RelayAttempt, type AttemptOutcome } from './relay-attempt.js';
import { otherClientSelectable, waitForMovingTunnels, waitForReconnect, withClients } from './retry-targets.js';
import type { RelayDeadlines } from './relay-deadlines.js';
import type { Deadline } from './deadline-queue.js';

// The relay's mechanisms, composed by PlatformRelay: tracking of waiting attempts, one attempt
// on one connection, answer intake, and where a retry may go.
export { PendingAnswers } from './pending-answers.js';
export { RelayAttempt, type AttemptOutcome } from './relay-attempt.js';
export { UNKNOWN_STREAM_MESSAGE } from './answer-intake.js';
export { createRelayDeadlines, type RelayDeadlines } from './relay-deadlines.js';

export interface RelayDeps {
  pool: ConnectionPool<Connection>;
  pending: PendingAnswers;
  metrics: ServerMetrics;
  logger: Logger;
  requestTimeoutMs: number;
  /** Idempotent answers up to this size are held until complete (retryable if the client dies mid-answer). */
  retryBufferBytes: number;
  /** After its tunnel drops, a request that cannot be retried still waits this long for its answer upload (the client may be alive). */
  answerGraceMs?: number;
  /** An idempotent request that every connection here failed waits this long for the token's client to reconnect (0: never). */
  reconnectWaitMs?: number;
  /** This server's id, carried in every streamingID so an answer landing on another server finds its way here. */
  serverId?: string;
  /** The deadlines of every relay and answer hold of this server (see createRelayDeadlines). */
  deadlines: RelayDeadlines;
}


export interface PlatformRelayInit {
  token: string;
  /** The request as it goes over the tunnel, without streamingID. */
  request: Omit<RelayRequest, 'streamingID'>;
  requestId: string;
  /** Ask for the answer in an ack (x-broker-ws-response). */
  wantsAck: boolean;
  idempotent: boolean;
  /**
   * The caller can take the request elsewhere (a forwarding peer tries its next target on
   * 503 connection-not-ready), so a hung tunnel here is never worth a try.
   */
  hasAlternative?: boolean;
  /** `request` (platform API) or `service` (control commands, always acked). */
  eventName?: 'request' | 'service';
  /** For `service`: whether the chosen connection's client understands it (the real server: ≥ 4.209.0 or local). */
  accepts?: (connection: Connection) => boolean;
  /**
   * Last resort when the request may still go elsewhere (it never reached a client, or it is
   * idempotent and its tunnel dropped before answering) but no local connection is left: e.g.
   * a peer server holding tunnels of the token.
   */
  fallback?: () => Promise<FallbackResult>;
  /** Whether `fallback` has somewhere to go now (a peer holds tunnels of the token): a hung tunnel's requests may be hedged there. */
  fallbackAvailable?: () => boolean;
  /** Whether the token had tunnels in the cluster lately (see PeerRouting.tunnelsMoving): none now is worth a wait, not a 404. */
  tunnelsMoving?: () => boolean;
}

/** Whether the fallback answered the platform; if not, why (it ends up in the 502's message). */
export type FallbackResult = { answered: true } | { answered: false; why: string };

/** The attempt lost its tunnel (or gave up on it): that client's other tunnels are suspect too. */
function lostTunnel(outcome: AttemptOutcome): boolean {
  return outcome.kind === 'not-sent' || outcome.kind === 'dropped' || outcome.kind === 'hedged';
}

/**
 * One platform request: picks a connection, relays, waits for the answer (POST stream or
 * ack), retries on another connection when the contract allows, writes the platform answer.
 */
export class PlatformRelay {
  readonly startedAt = Date.now();
  #current: RelayAttempt | undefined;
  #timedOut = false;
  #platformGone = false;
  #retriedAfterSend = false;
  #headSent = false;
  /** Connections already tried by this request. */
  readonly #exclude = new Set<Connection>();
  #closed = false;
  #deadline: Deadline | undefined;
  #done: Promise<void> | undefined;
  #resolveDone: (() => void) | undefined;

  constructor(
    readonly init: PlatformRelayInit,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    private readonly deps: RelayDeps,
    /** Called once the platform response is over (finished or broken). */
    private readonly onClosed?: (relay: PlatformRelay) => void,
  ) {
    res.once('close', () => this.#onResponseClosed());
  }

  /** Settles when the platform response is over (finished or broken): drain waits on it. Made only when asked for. */
  get done(): Promise<void> {
    return (this.#done ??= this.#closed ? Promise.resolve() : new Promise((r) => (this.#resolveDone = r)));
  }

  #onResponseClosed(): void {
    this.#closed = true;
    if (!this.res.writableFinished) {
      this.#platformGone = true;
      this.#current?.abort('platform-gone');
    }
    this.#resolveDone?.();
    this.onClosed?.(this);
  }

  get canRetry(): boolean {
    return this.init.idempotent && !this.#retriedAfterSend;
  }

  get platformGone(): boolean {
    return this.#platformGone;
  }

  get timedOut(): boolean {
    return this.#timedOut;
  }

  /** Marks that answer bytes are about to reach the platform: no retry, no timeout any more. */
  commit(): void {
    this.#headSent = true;
    this.deps.deadlines.relay.delete(this.#deadline);
  }

  /** The relay's deadline passed (called by its DeadlineQueue): stop waiting for an answer. */
  expire(): void {
    this.#timedOut = true;
    this.#current?.abort('timeout');
  }

  get committed(): boolean {
    return this.#headSent;
  }

  async run(): Promise<void> {
    const { metrics } = this.deps;
    metrics.inFlight.inc();
    this.#deadline = this.deps.deadlines.relay.add(this);
    let outcomeLabel = 'answered';
    try {
      outcomeLabel = await this.#loop();
    } catch (err) {
      outcomeLabel = 'error';
      this.deps.logger.error({ requestId: this.init.requestId, error: describeError(err) }, 'relay failed unexpectedly');
      if (!this.res.headersSent) sendFailure(this.res, FAILURES.RELAY_ERROR, { ok: false, message: 'relay failed' }, { 'snyk-request-id': this.init.requestId });
      else this.res.destroy();
    } finally {
      this.deps.deadlines.relay.delete(this.#deadline);
      metrics.inFlight.dec();
      metrics.relayOutcomes.inc({ outcome: outcomeLabel });
    }
  }

  /**
   * May the request waiting on `attempt` go again elsewhere because its tunnel missed a probe?
   * Only an idempotent request, before any byte reached the platform, and only when somewhere
   * else can take it now: a responsive connection of another client here, a peer holding tunnels
   * of the token, or the forwarding server (a forwarded request). Otherwise it keeps waiting: the
   * client may yet answer.
   */
  mayHedge(attempt: RelayAttempt): boolean {
    if (!this.init.idempotent || this.#headSent || this.#platformGone || this.#timedOut || this.#current !== attempt) return false;
    if (this.init.hasAlternative) return true;
    if (otherClientSelectable(this.deps.pool, this.init.token, attempt.connection, this.#exclude)) return true;
    return !this.#fallbackTried && this.init.fallback !== undefined && (this.init.fallbackAvailable?.() ?? false);
  }

  async #loop(): Promise<string> {
    const { pool, metrics, logger } = this.deps;
    const exclude = this.#exclude;
    /** Clients whose tunnel just failed us: their other tunnel likely shares the fate (a dead process), so others go first. */
    const suspectClients = new Set<string>();
    let first = true;
    for (;;) {
      if (this.#platformGone) return 'platform-gone';
      if (this.#timedOut) return this.#failTimeout();
      const orUnresponsive = !this.init.hasAlternative;
      let selection = pool.select(this.init.token, this.#passOver(exclude, suspectClients), Date.now(), orUnresponsive);
      if (selection.kind !== 'ok' && suspectClients.size) {
        // Only the failed client's other tunnel is left here (likely dead too): a peer's tunnels go first.
        if (await this.#tryFallback()) return 'peer';
        selection = pool.select(this.init.token, exclude, Date.now(), orUnresponsive);
      }
      if (selection.kind !== 'ok') {
        if (first) {
          const waited = await this.#awaitMovingTunnels(selection.kind);
          if (waited === 'peer') return 'peer';
          if (waited === 'again') continue;
          return this.#refuse(selection.kind);
        }
        // Only reached after a not-sent attempt or a dropped idempotent one: trying elsewhere is safe.
        const ended = await this.#elsewhere('the tunnel carrying this request closed and no other connection could take it', exclude);
        if (ended !== undefined) return ended;
        continue;
      }
      first = false;
      const connection = selection.connection;
      exclude.add(connection);
      const outcome = await this.#attempt(connection);
      if (lostTunnel(outcome) && connection.identity) suspectClients.add(connection.identity.clientId);
      switch (outcome.kind) {
        case 'answered':
          return 'answered';
        case 'platform-gone':
          return 'platform-gone';
        case 'timeout':
          return this.#failTimeout();
        case 'failed':
          this.#fail(outcome.failure, outcome.message);
          return outcome.failure.reason;
        case 'hedged':
          metrics.relayHedges.inc({ target: 'tunnel' });
          logger.info({ requestId: this.init.requestId, connection: connection.id, method: this.init.request.method }, 'tunnel missed its probe; sending the idempotent request again elsewhere (hedge)');
          continue;
        case 'not-sent':
          metrics.relayRetries.inc({ reason: 'not-sent' });
          logger.debug({ requestId: this.init.requestId, connection: connection.id }, 'tunnel closed before the request was sent; trying another connection');
          continue;
        case 'dropped':
          if (this.canRetry) {
            this.#retriedAfterSend = true;
            metrics.relayRetries.inc({ reason: 'dropped' });
            logger.info({ requestId: this.init.requestId, connection: connection.id, detail: outcome.detail }, 'tunnel dropped before the answer; retrying the idempotent request on another connection');
            continue;
          }
          // An idempotent request whose retry dropped too (both tunnels of a dying client) may still go to another server.
          if (this.init.idempotent) {
            const ended = await this.#elsewhere(`the broker client connection dropped before answering (${outcome.detail})`, exclude);
            if (ended !== undefined) return ended;
            continue;
          }
          // Not retried: the client may have relayed it before it dropped, and the platform must know.
          this.#fail(FAILURES.TUNNEL_CLOSED, `the broker client connection dropped before answering (${outcome.detail}); the request may have reached the origin, so it was not retried`);
          return FAILURES.TUNNEL_CLOSED.reason;
      }
    }
  }

  /** No connection could take the request at its first try: 404 when the token has none, else 503 to come back. */
  #refuse(kind: Exclude<Selection<Connection>['kind'], 'ok'>): string {
    if (kind === 'no-connection') {
      this.#failRaw(FAILURES.NO_CONNECTION, { ok: false });
      return FAILURES.NO_CONNECTION.reason;
    }
    this.#failRaw(FAILURES.CONNECTION_NOT_READY, { ok: false }, { 'retry-after': '1' });
    return 'not-ready';
  }

  /** What the next selection passes over: the connections tried, and those of clients that just failed us. */
  #passOver(exclude: ReadonlySet<Connection>, suspectClients: ReadonlySet<string>): ReadonlySet<Connection> {
    return suspectClients.size ? withClients(this.deps.pool, this.init.token, exclude, suspectClients) : exclude;
  }

  #failTimeout(): string {
    this.#fail(FAILURES.RESPONSE_TIMEOUT, this.#timeoutMessage());
    return 'timeout';
  }

  #fallbackTried = false;
  /** Why the fallback could not take the request, for the final error message. */
  #fallbackWhy: string | undefined;

  #timeoutMessage(): string {
    const base = `no answer from the broker client within ${this.deps.requestTimeoutMs} ms`;
    return this.init.idempotent ? base : `${base}; the request may have reached the origin`;
  }

  /** The fallback (a peer server), at most once per request; true when it answered the platform. */
  async #tryFallback(): Promise<boolean> {
    if (!this.init.fallback || this.#fallbackTried || this.#platformGone || this.res.headersSent) return false;
    this.#fallbackTried = true;
    const result = await this.init.fallback();
    if (!result.answered) this.#fallbackWhy = result.why;
    return result.answered;
  }

  /**
   * No connection here can take a request that may safely go elsewhere: a peer, else a
   * reconnect of the token's client (undefined: try again here), else 502 marked
   * retry-elsewhere for a forwarding server.
   */
  async #elsewhere(reason: string, exclude: ReadonlySet<Connection>): Promise<string | undefined> {
    if (await this.#tryFallback()) return 'peer';
    if (this.#platformGone) return 'platform-gone';
    if ((await this.#awaitReconnect(exclude)) || this.#timedOut) return undefined;
    if (this.#platformGone) return 'platform-gone';
    const message = this.#fallbackWhy ? `${reason} (${this.#fallbackWhy})` : reason;
    this.deps.logger.warn({ requestId: this.init.requestId, method: this.init.request.method, status: FAILURES.TUNNEL_CLOSED.status, reason: FAILURES.TUNNEL_CLOSED.reason, detail: message }, 'platform request failed');
    this.#failRaw(FAILURES.TUNNEL_CLOSED, { ok: false, message }, { [RETRY_ELSEWHERE_HEADER]: 'true' });
    return FAILURES.TUNNEL_CLOSED.reason;
  }

  #reconnectWaited = false;
  #movingWaited = false;

  /**
   * No connection here at the first try, but the token had tunnels lately (or those here are all
   * draining): a server is draining and its clients reconnect, here or at a peer, within a second
   * or so. Nothing was sent yet,
   * so any request may wait for them, once and within reconnectWaitMs, instead of a 404. A
   * request forwarded by a peer does not wait: that server has other targets to try.
   */
  async #awaitMovingTunnels(kind: Exclude<Selection<Connection>['kind'], 'ok'>): Promise<'peer' | 'again' | undefined> {
    const wait = this.deps.reconnectWaitMs ?? 0;
    if (this.#movingWaited || wait <= 0 || this.init.hasAlternative) return undefined;
    // Connections here that are all draining are clients on their way elsewhere (or back here):
    // as much in motion as a token with none. Heartbeat-late ones may be dead: 503 at once.
    const moving = kind === 'not-ready' ? this.deps.pool.allDraining(this.init.token) : this.init.tunnelsMoving?.() === true;
    if (!moving) return undefined;
    this.#movingWaited = true;
    return (await waitForMovingTunnels(this, this.deps, wait)) ?? 'again';
  }

  /**
   * Every connection of the token here failed this idempotent request and no peer took it. A
   * client whose tunnels were cut (a proxy or NAT dropping connections) is usually back within
   * a second or two, so wait for a fresh connection, once per request and within its timeout,
   * instead of failing now. A request forwarded by a peer does not wait: that server has other
   * targets to try.
   */
  #awaitReconnect(exclude: ReadonlySet<Connection>): Promise<boolean> | false {
    const wait = this.deps.reconnectWaitMs ?? 0;
    if (this.#reconnectWaited || wait <= 0 || !this.init.idempotent || this.init.hasAlternative) return false;
    this.#reconnectWaited = true;
    return waitForReconnect(this, this.deps, exclude, wait);
  }

  #failRaw(failure: Failure, body: unknown, headers: Record<string, string> = {}): void {
    if (this.#platformGone) return;
    if (this.res.headersSent) {
      this.res.destroy();
      return;
    }
    sendFailure(this.res, failure, body, { ...headers, 'snyk-request-id': this.init.requestId });
  }

  #fail(failure: Failure, message: string): void {
    // 404/503 are routine (no tunnel yet); these are the failures an operator needs to see.
    this.deps.logger.warn({ requestId: this.init.requestId, method: this.init.request.method, status: failure.status, reason: failure.reason, detail: message }, 'platform request failed');
    this.#failRaw(failure, { ok: false, message });
  }

  async #attempt(connection: Connection): Promise<AttemptOutcome> {
    const { pending, metrics } = this.deps;
    if (this.init.accepts && !this.init.accepts(connection)) {
      return { kind: 'failed', failure: FAILURES.NOT_IMPLEMENTED, message: 'Not implemented for client versions before 4.209.0' };
    }
    const useAck = this.init.wantsAck || !connection.acceptsPostStreams;
    const attempt = new RelayAttempt(this, connection, useAck ? '' : this.deps.serverId !== undefined ? createStreamingId(this.deps.serverId) : randomUUID(), this.deps);
    this.#current = attempt;
    connection.inFlight++;
    connection.served++;
    metrics.relayed.inc({ connection: connection.id });
    connection.attach(attempt);
    if (!useAck) pending.add(attempt);
    try {
      if (useAck) void attempt.sendWithAck();
      else attempt.send();
      return await attempt.outcome;
    } finally {
      connection.detach(attempt);
      connection.inFlight--;
      pending.delete(attempt);
      connection.maybeFinishDrain();
      this.#current = undefined;
    }
  }

  /** Writes status and headers of the answer to the platform. False when that failed (a 502 went out instead). */
  writeHead(head: ResponseHead, connection: Connection): boolean {
    this.commit();
    this.deps.metrics.relayLatency.observe({ variant: this.init.wantsAck || !connection.acceptsPostStreams ? 'ack' : 'stream' }, (Date.now() - this.startedAt) / 1000);
    const headers = answerHeaders(head.headers);
    headers['snyk-request-id'] = this.init.requestId;
    headers['x-broker-connection'] = connection.id;
    try {
      this.res.writeHead(head.status, headers);
      return true;
    } catch (err) {
      this.deps.logger.warn({ requestId: this.init.requestId, error: describeError(err) }, 'client answer has headers node refuses');
      sendFailure(this.res, FAILURES.BAD_RESPONSE, { ok: false, message: 'the broker client answered with invalid headers' }, { 'snyk-request-id': this.init.requestId });
      return false;
    }
  }
}
