import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createStreamingId } from './tunnel-routing.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, pipeline } from 'node:stream';
import { parseAckResponse, readResponseHead, ProtocolError, type RelayRequest, type ResponseHead } from '../protocol/index.js';
import { describeError } from '../http/errors.js';
import { sendFailure, sendJson } from '../http/server-helpers.js';
import { FAILURES, RETRY_ELSEWHERE_HEADER, type Failure } from '../protocol/failures.js';
import type { Logger } from '../observability/logger.js';
import type { Connection, TunnelWaiter } from './connection.js';
import type { ConnectionPool } from './pool.js';
import type { ServerMetrics } from './metrics.js';
import { answerHeaders } from './platform-request.js';

export const UNKNOWN_STREAM_MESSAGE = 'Unable to find request matching streaming id.';

/** How an attempt on one connection ended. */
export type AttemptOutcome =
  /** The platform got (or is getting) its answer; nothing more to do. */
  | { kind: 'answered' }
  /** The tunnel went away before the request left: any other connection may take it. */
  | { kind: 'not-sent' }
  /** The request left, then the tunnel (or the answer upload) died before a byte reached the platform. */
  | { kind: 'dropped'; detail: string }
  | { kind: 'failed'; failure: Failure; message: string }
  | { kind: 'timeout' }
  | { kind: 'platform-gone' }
  /**
   * The tunnel missed its probe while this idempotent request waited and nothing had reached the
   * platform: it goes again elsewhere (hedging). A late answer to this attempt is refused.
   */
  | { kind: 'hedged' };

/** streamingID → the attempt waiting for that POST /response-data. */
export class PendingAnswers {
  readonly #byId = new Map<string, RelayAttempt>();
  add(attempt: RelayAttempt): void {
    this.#byId.set(attempt.streamingID, attempt);
  }
  delete(attempt: RelayAttempt): void {
    if (this.#byId.get(attempt.streamingID) === attempt) this.#byId.delete(attempt.streamingID);
  }
  get(streamingID: string): RelayAttempt | undefined {
    return this.#byId.get(streamingID);
  }
  get size(): number {
    return this.#byId.size;
  }
}

export interface RelayDeps {
  pool: ConnectionPool<Connection>;
  pending: PendingAnswers;
  metrics: ServerMetrics;
  logger: Logger;
  requestTimeoutMs: number;
  /** Idempotent answers up to this size are held until complete (retryable if the client dies mid-answer). */
  retryBufferBytes: number;
  /** Longest an idempotent answer is held before it is streamed anyway. */
  retryBufferMs?: number;
  /** After its tunnel drops, a request that cannot be retried still waits this long for its answer upload (the client may be alive). */
  answerGraceMs?: number;
  /** An idempotent request that every connection here failed waits this long for the token's client to reconnect (0: never). */
  reconnectWaitMs?: number;
  /** This server's id, carried in every streamingID so an answer landing on another server finds its way here. */
  serverId?: string;
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
}

/** Whether the fallback answered the platform; if not, why (it ends up in the 502's message). */
export type FallbackResult = { answered: true } | { answered: false; why: string };

function countingTransform(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}

/**
 * One platform request: picks a connection, relays, waits for the answer (POST stream or
 * ack), retries on another connection when the contract allows, writes the platform answer.
 */
export class PlatformRelay {
  readonly startedAt = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #current: RelayAttempt | undefined;
  #timedOut = false;
  #platformGone = false;
  #retriedAfterSend = false;
  #headSent = false;
  /** Connections already tried by this request. */
  readonly #exclude = new Set<Connection>();
  readonly done: Promise<void>;

  constructor(
    readonly init: PlatformRelayInit,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    private readonly deps: RelayDeps,
  ) {
    // Settles when the platform response is over (finished or broken): drain waits on it.
    this.done = new Promise((r) => res.once('close', () => r()));
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
    clearTimeout(this.#timer);
  }

  get committed(): boolean {
    return this.#headSent;
  }

  async run(): Promise<void> {
    const { metrics } = this.deps;
    metrics.inFlight.inc();
    this.res.on('close', () => {
      if (!this.res.writableFinished) {
        this.#platformGone = true;
        this.#current?.abort('platform-gone');
      }
    });
    this.#timer = setTimeout(() => {
      this.#timedOut = true;
      this.#current?.abort('timeout');
    }, this.deps.requestTimeoutMs);
    this.#timer.unref?.();
    let outcomeLabel = 'answered';
    try {
      outcomeLabel = await this.#loop();
    } catch (err) {
      outcomeLabel = 'error';
      this.deps.logger.error({ requestId: this.init.requestId, error: describeError(err) }, 'relay failed unexpectedly');
      if (!this.res.headersSent) sendFailure(this.res, FAILURES.RELAY_ERROR, { ok: false, message: 'relay failed' }, { 'snyk-request-id': this.init.requestId });
      else this.res.destroy();
    } finally {
      clearTimeout(this.#timer);
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
    const now = Date.now();
    const clientId = attempt.connection.identity?.clientId;
    for (const c of this.deps.pool.members(this.init.token)) {
      if (c === attempt.connection || this.#exclude.has(c) || (clientId !== undefined && c.identity?.clientId === clientId)) continue;
      if (this.deps.pool.isSelectable(c, now)) return true;
    }
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
      if (this.#timedOut) {
        this.#fail(FAILURES.RESPONSE_TIMEOUT, this.#timeoutMessage());
        return 'timeout';
      }
      const orUnresponsive = !this.init.hasAlternative;
      let selection = pool.select(this.init.token, suspectClients.size ? this.#withClients(exclude, suspectClients) : exclude, Date.now(), orUnresponsive);
      if (selection.kind !== 'ok' && suspectClients.size) {
        // Only the failed client's other tunnel is left here (likely dead too): a peer's tunnels go first.
        if (await this.#tryFallback()) return 'peer';
        selection = pool.select(this.init.token, exclude, Date.now(), orUnresponsive);
      }
      if (selection.kind !== 'ok') {
        if (first) {
          if (selection.kind === 'no-connection') {
            this.#failRaw(FAILURES.NO_CONNECTION, { ok: false });
            return FAILURES.NO_CONNECTION.reason;
          }
          this.#failRaw(FAILURES.CONNECTION_NOT_READY, { ok: false }, { 'retry-after': '1' });
          return 'not-ready';
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
      if ((outcome.kind === 'not-sent' || outcome.kind === 'dropped' || outcome.kind === 'hedged') && connection.identity) suspectClients.add(connection.identity.clientId);
      switch (outcome.kind) {
        case 'answered':
          return 'answered';
        case 'platform-gone':
          return 'platform-gone';
        case 'timeout':
          this.#fail(FAILURES.RESPONSE_TIMEOUT, this.#timeoutMessage());
          return 'timeout';
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

  /**
   * Every connection of the token here failed this idempotent request and no peer took it. A
   * client whose tunnels were cut (a proxy or NAT dropping connections) is usually back within
   * a second or two, so wait for a fresh connection, once per request and within its timeout,
   * instead of failing now. A request forwarded by a peer does not wait: that server has other
   * targets to try.
   */
  async #awaitReconnect(exclude: ReadonlySet<Connection>): Promise<boolean> {
    const wait = this.deps.reconnectWaitMs ?? 0;
    if (this.#reconnectWaited || wait <= 0 || !this.init.idempotent || this.init.hasAlternative) return false;
    this.#reconnectWaited = true;
    const waitStarted = Date.now();
    const deadline = Math.min(waitStarted + wait, this.startedAt + this.deps.requestTimeoutMs);
    while (Date.now() < deadline && !this.#platformGone && !this.#timedOut) {
      // The pool has no events; a rare path, so a short poll with a deadline is enough.
      await sleep(100, undefined, { ref: false });
      if (this.deps.pool.select(this.init.token, exclude, Date.now(), false).kind === 'ok') {
        this.deps.metrics.relayRetries.inc({ reason: 'reconnected' });
        this.deps.logger.info({ requestId: this.init.requestId, waitedMs: Date.now() - waitStarted }, 'the broker client reconnected; retrying the idempotent request');
        return true;
      }
    }
    return false;
  }

  #withClients(exclude: ReadonlySet<Connection>, clientIds: ReadonlySet<string>): Set<Connection> {
    const out = new Set(exclude);
    for (const c of this.deps.pool.members(this.init.token)) if (c.identity && clientIds.has(c.identity.clientId)) out.add(c);
    return out;
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

/** One try of a PlatformRelay on one connection. */
export class RelayAttempt implements TunnelWaiter {
  #sent = false;
  #answering = false;
  #settled = false;
  #resolve!: (o: AttemptOutcome) => void;
  readonly outcome: Promise<AttemptOutcome>;
  #answerUpload: IncomingMessage | undefined;
  #graceTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly relay: PlatformRelay,
    readonly connection: Connection,
    readonly streamingID: string,
    private readonly deps: RelayDeps,
  ) {
    this.outcome = new Promise((r) => (this.#resolve = r));
  }

  get token(): string {
    return this.relay.init.token;
  }

  settle(outcome: AttemptOutcome): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#graceTimer);
    this.#resolve(outcome);
  }

  get settled(): boolean {
    return this.#settled;
  }

  send(): void {
    const payload: RelayRequest = { ...this.relay.init.request, streamingID: this.streamingID };
    try {
      this.connection.sendEvent('request', [payload], () => (this.#sent = true));
    } catch {
      this.settle({ kind: 'not-sent' });
    }
  }

  async sendWithAck(): Promise<void> {
    if (this.connection.state === 'closed') return this.settle({ kind: 'not-sent' });
    const payload: RelayRequest = { ...this.relay.init.request, streamingID: '' };
    this.#sent = true;
    let args: unknown[];
    try {
      args = await this.connection.channel.call(this.relay.init.eventName ?? 'request', [payload]);
    } catch (err) {
      if (this.#settled) return;
      return this.settle({ kind: 'dropped', detail: describeError(err) });
    }
    if (this.#settled) return;
    if (this.relay.platformGone) return this.settle({ kind: 'platform-gone' });
    let answer;
    try {
      answer = parseAckResponse(args[0]);
    } catch (err) {
      return this.settle({ kind: 'failed', failure: FAILURES.BAD_RESPONSE, message: `invalid answer from the broker client: ${(err as Error).message}` });
    }
    if (answer.status < 100 || answer.status > 599) {
      return this.settle({ kind: 'failed', failure: FAILURES.BAD_RESPONSE, message: 'invalid answer status from the broker client' });
    }
    const body = answer.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(answer.body) ? answer.body : Buffer.from(answer.body, 'utf8');
    const headers = { ...(answer.headers ?? {}) } as Record<string, unknown>;
    delete headers['content-length'];
    if (!this.relay.writeHead({ status: answer.status, headers: { ...headers, 'content-length': String(body.length) } }, this.connection)) {
      return this.settle({ kind: 'answered' });
    }
    this.deps.metrics.bytes.inc({ direction: 'response' }, body.length);
    this.relay.res.end(body);
    this.settle({ kind: 'answered' });
  }

  onTunnelUnresponsive(): void {
    // An answer already on its way (its upload started) is not raced.
    if (this.#settled || this.#answering || !this.relay.mayHedge(this)) return;
    this.settle({ kind: 'hedged' });
  }

  onTunnelClosed(): void {
    // Once the answer upload started, it travels over HTTP and no longer needs the tunnel.
    if (this.#answering) return;
    if (!this.#sent) return this.settle({ kind: 'not-sent' });
    const dropped: AttemptOutcome = { kind: 'dropped', detail: `tunnel closed: ${this.connection.closeReason ?? 'closed'}` };
    const grace = this.deps.answerGraceMs ?? 5000;
    // Retryable requests move on at once; an ack can no longer arrive; others give a live client a moment to upload.
    if (this.relay.canRetry || this.streamingID === '' || grace <= 0) return this.settle(dropped);
    this.#graceTimer = setTimeout(() => {
      if (!this.#answering) this.settle(dropped);
    }, grace);
    this.#graceTimer.unref?.();
  }

  /** Timeout or platform gone: stop waiting, and stop any upload that is still in its head. */
  abort(kind: 'timeout' | 'platform-gone'): void {
    if (this.relay.committed) return; // streaming: the pipeline handles a platform that leaves
    this.#answerUpload?.destroy();
    this.settle({ kind });
  }

  /** A complete answer that came over the tunnel (our client only). False when the attempt no longer waits. */
  takeWholeAnswer(head: ResponseHead, body: Buffer): boolean {
    if (this.#settled || this.#answering) return false;
    this.#answering = true;
    this.connection.detach(this);
    this.#answerWhole(head, body);
    return true;
  }

  /** An answer for this attempt arrived but could not be read. */
  failAnswer(message: string): void {
    if (this.#settled || this.#answering) return;
    this.settle({ kind: 'failed', failure: FAILURES.BAD_RESPONSE, message });
  }

  #answerWhole(head: ResponseHead, body: Buffer): void {
    if (this.relay.writeHead(head, this.connection)) {
      this.deps.metrics.bytes.inc({ direction: 'response' }, body.length);
      this.relay.res.end(body);
    }
    this.settle({ kind: 'answered' });
  }

  /** Takes the POST /response-data upload for this attempt. False when the attempt no longer waits. */
  takeAnswer(upload: IncomingMessage, uploadRes: ServerResponse): boolean {
    if (this.#settled || this.#answering) return false;
    this.#answering = true;
    this.#answerUpload = upload;
    this.connection.detach(this);
    void this.#consume(upload, uploadRes);
    return true;
  }

  async #consume(upload: IncomingMessage, uploadRes: ServerResponse): Promise<void> {
    const { metrics, logger } = this.deps;
    const relay = this.relay;
    let head: ResponseHead;
    try {
      head = await readResponseHead(upload);
    } catch (err) {
      const code = err instanceof ProtocolError ? err.code : 'RESPONSE_HEAD_INVALID';
      const message = (err as Error).message;
      logger.warn({ requestId: relay.init.requestId, connection: this.connection.id, code, error: message }, 'invalid response-data stream from the broker client');
      if (!uploadRes.headersSent && !uploadRes.destroyed) {
        sendJson(uploadRes, 400, { message: `Invalid response stream: ${message}` });
        upload.resume();
      }
      if (this.#settled) return;
      return this.settle({ kind: 'failed', failure: FAILURES.BAD_RESPONSE, message: `the broker client sent an invalid answer: ${message}` });
    }
    if (this.#settled) {
      // Timed out or the platform left while the head was on its way.
      if (!uploadRes.headersSent) sendJson(uploadRes, 500, { message: UNKNOWN_STREAM_MESSAGE });
      upload.resume();
      return;
    }
    const hold = relay.canRetry && this.deps.retryBufferBytes > 0;
    let held: Buffer[] = [];
    // Without a retry buffer the head still waits for the first body byte (at most
    // retryBufferMs): an upload cut before any body byte then gets the platform a clean 502
    // instead of a connection closed without a status line.
    {
      const result = await this.#hold(upload, held, hold ? this.deps.retryBufferBytes : 0);
      if (this.#settled) return;
      if (result === 'aborted') {
        upload.destroy();
        return this.settle({ kind: 'dropped', detail: 'answer upload aborted' });
      }
      if (result === 'end') {
        const body = Buffer.concat(held);
        held = [];
        this.#answerWhole(head, body);
        sendJson(uploadRes, 200, {});
        return;
      }
    }
    if (!relay.writeHead(head, this.connection)) {
      upload.destroy();
      return this.settle({ kind: 'answered' });
    }
    this.settle({ kind: 'answered' });
    for (const chunk of held) {
      metrics.bytes.inc({ direction: 'response' }, chunk.length);
      relay.res.write(chunk);
    }
    held = [];
    pipeline(
      upload,
      countingTransform((n) => metrics.bytes.inc({ direction: 'response' }, n)),
      relay.res,
      (err) => {
        if (err) {
          logger.warn({ requestId: relay.init.requestId, connection: this.connection.id, error: describeError(err) }, 'answer stream broke off');
          relay.res.destroy();
          if (!uploadRes.headersSent && !uploadRes.destroyed) sendJson(uploadRes, 500, { message: 'answer stream broke off' });
          return;
        }
        sendJson(uploadRes, 200, {});
      },
    );
  }

  /** Holds the first bytes of an idempotent answer: until it ends, exceeds the buffer, or takes too long. */
  #hold(upload: IncomingMessage, held: Buffer[], limit: number): Promise<'end' | 'full' | 'slow' | 'aborted'> {
    const maxMs = this.deps.retryBufferMs ?? 200;
    return new Promise((resolve) => {
      let size = 0;
      let finished = false;
      const finish = (r: 'end' | 'full' | 'slow' | 'aborted') => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        upload.off('data', onData);
        upload.off('end', onEnd);
        upload.off('error', onAbort);
        upload.off('close', onClose);
        if (r === 'full' || r === 'slow') upload.pause();
        resolve(r);
      };
      const onData = (chunk: Buffer) => {
        held.push(chunk);
        size += chunk.length;
        if (size > limit) finish('full');
      };
      const onEnd = () => finish('end');
      const onAbort = () => finish('aborted');
      const onClose = () => {
        if (!upload.readableEnded) finish('aborted');
      };
      const timer = setTimeout(() => finish('slow'), maxMs);
      upload.on('data', onData);
      upload.on('end', onEnd);
      upload.on('error', onAbort);
      upload.on('close', onClose);
      if (this.#settled) finish('aborted');
    });
  }
}
