import type { Readable } from 'node:stream';
import type { RelayRequest, ResponseHead } from '../protocol/index.js';
import { describeError } from '../http/errors.js';
import { FAILURES, type Failure } from '../protocol/failures.js';
import type { Connection, TunnelWaiter } from './connection.js';
import type { PlatformRelay, RelayDeps } from './relay.js';
import { answerFromAck, answerWhole, consumeUpload, type AnswerReceipt } from './answer-intake.js';

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

/** One try of a PlatformRelay on one connection. */
export class RelayAttempt implements TunnelWaiter {
  #sent = false;
  #answering = false;
  #settled = false;
  #resolve!: (o: AttemptOutcome) => void;
  readonly outcome: Promise<AttemptOutcome>;
  #answerUpload: Readable | undefined;
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
    try {
      this.connection.sendRequest(this.relay.init.request, this.streamingID, () => (this.#sent = true));
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
    answerFromAck(this, this.deps.metrics, args);
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
    answerWhole(this, this.deps.metrics, head, body);
    return true;
  }

  /** An answer for this attempt arrived but could not be read. */
  failAnswer(message: string): void {
    if (this.#settled || this.#answering) return;
    this.settle({ kind: 'failed', failure: FAILURES.BAD_RESPONSE, message });
  }

  /** Takes the answer upload (POST /response-data, or a stream over the tunnel) for this attempt. False when the attempt no longer waits. */
  takeAnswer(upload: Readable, uploadRes: AnswerReceipt): boolean {
    if (this.#settled || this.#answering) return false;
    this.#answering = true;
    this.#answerUpload = upload;
    this.connection.detach(this);
    void consumeUpload(this, this.deps, upload, uploadRes);
    return true;
  }
}
