import { Readable } from 'node:stream';
import { STREAM_ABORT, STREAM_CREDIT_EVENT, STREAM_DATA, STREAM_DONE_EVENT, STREAM_WINDOW_BYTES, type StreamFrame } from '../protocol/index.js';
import type { Logger } from '../observability/logger.js';
import { UNKNOWN_STREAM_MESSAGE, type AnswerReceipt } from './answer-intake.js';
import type { Connection, TunnelWaiter } from './connection.js';
import type { PendingAnswers } from './pending-answers.js';

/**
 * What this server lets a stream have in flight: more than the window a stream starts with
 * (STREAM_WINDOW_BYTES, which both ends assume), granted with the first bytes the reader takes.
 * With 1 MiB the client waited for credit most of the time and the tunnel socket was read in
 * small pieces; 4 MiB keeps the pipe full. The client follows whatever the server grants.
 */
export const SERVER_STREAM_WINDOW_BYTES = 4 * STREAM_WINDOW_BYTES;

/**
 * One answer streaming in over the tunnel, as the Readable that answer intake consumes like a
 * POST /response-data body. It grants the client more credit only as its reader takes bytes,
 * so at most one window per stream waits here however slow the platform reads.
 */
export class TunnelAnswerStream extends Readable {
  #received = 0;
  #granted = STREAM_WINDOW_BYTES;

  constructor(private readonly grant: (limit: number) => void, private readonly onDestroyed: (err: Error | null) => void, private readonly window = SERVER_STREAM_WINDOW_BYTES) {
    super({ highWaterMark: window });
    // Its reader learns of a failure from 'close' and pipeline; between readers an 'error' must not crash the server.
    this.on('error', () => undefined);
  }

  /** Takes the next payload; false when it goes past the credit granted (a broken client). */
  receive(payload: Buffer): boolean {
    if (this.#received + payload.length > this.#granted) return false;
    this.#received += payload.length;
    this.push(payload);
    return true;
  }

  override _read(): void {
    // Credit follows what the reader took (read() below), not Node's requests for more: a
    // request made while the client had no credit left would otherwise never come again.
  }

  override read(size?: number): Buffer | null {
    const chunk = super.read(size) as Buffer | null;
    // Grant in steps of a quarter window (one event per 1 MiB the reader took, not per chunk);
    // the first read already grants the server's window beyond the 1 MiB a stream starts with.
    // A reader that empties the buffer always unblocks a client that used all its credit.
    const limit = this.#received - this.readableLength + this.window;
    if (limit - this.#granted >= this.window / 4) {
      this.#granted = limit;
      this.grant(limit);
    }
    return chunk;
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.onDestroyed(err);
    cb(err);
  }
}

export interface AnswerStreamDeps {
  pending: PendingAnswers;
  logger: Logger;
  onBadFrame(conn: Connection, err: Error): void;
}

/** Streams ended or refused are remembered this long (by count), so their frames still in flight are dropped quietly. */
const FORGOTTEN_IDS = 1024;

/** The answer streams of one connection: frames in, credit and verdicts out; all fail when the tunnel goes. */
export class IncomingAnswerStreams implements TunnelWaiter {
  readonly #open = new Map<string, TunnelAnswerStream>();
  readonly #ended = new Set<string>();

  constructor(private readonly conn: Connection, private readonly deps: AnswerStreamDeps) {
    conn.attach(this);
  }

  receive(frame: StreamFrame): void {
    const id = frame.streamingID;
    const stream = this.#open.get(id);
    if (!stream) {
      if (this.#ended.has(id)) return;
      if (frame.type !== STREAM_DATA) return this.#forget(id);
      return this.#start(id, frame.payload);
    }
    if (frame.type === STREAM_DATA) {
      if (!stream.receive(frame.payload)) {
        this.deps.onBadFrame(this.conn, new Error(`answer stream ${id} went past its credit`));
        this.#verdict(id, 400, 'answer stream went past its credit');
        stream.destroy(new Error('the broker client sent past its credit'));
      }
      return;
    }
    if (frame.type === STREAM_ABORT) {
      this.#forget(id);
      stream.destroy(new Error(`the broker client aborted the answer: ${frame.payload.toString('utf8', 0, 200)}`));
      return;
    }
    this.#forget(id);
    stream.push(null);
  }

  #start(id: string, first: Buffer): void {
    const attempt = this.deps.pending.get(id);
    // Only the connection the request went out on may answer it.
    if (attempt?.connection !== this.conn) {
      this.#verdict(id, 500, UNKNOWN_STREAM_MESSAGE);
      this.deps.logger.info({ connection: this.conn.id, streamingID: id }, 'answer stream over the tunnel for a request no longer waiting here (timed out, or the platform left); dropped');
      return;
    }
    // From here until its verdict the stream holds the tunnel open: a drain waits for it.
    const conn = this.conn;
    conn.answerStreams++;
    let verdictSent = false;
    const receipt: AnswerReceipt = {
      send: (status, body) => {
        if (verdictSent) return;
        verdictSent = true;
        this.#verdict(id, status, body.message ?? '');
        conn.answerStreams--;
        conn.maybeFinishDrain();
      },
    };
    const stream: TunnelAnswerStream = new TunnelAnswerStream(
      (limit) => this.#send(STREAM_CREDIT_EVENT, [id, limit]),
      (err) => {
        if (this.#open.get(id) === stream) this.#forget(id);
        // A stream read to its end gets its verdict from the intake once the platform has it all;
        // one destroyed before (the tunnel closed, the platform left) tells the client to stop.
        if (err || !stream.readableEnded) receipt.send(500, { message: 'answer stream closed by the broker server' });
      },
    );
    this.#open.set(id, stream);
    stream.receive(first);
    if (!attempt.takeAnswer(stream, receipt)) stream.destroy();
  }

  #verdict(id: string, status: number, message: string): void {
    this.#forget(id);
    this.#send(STREAM_DONE_EVENT, [id, status, message]);
  }

  #send(name: string, args: unknown[]): void {
    if (this.conn.state === 'closed') return;
    try {
      this.conn.sendEvent(name, args);
    } catch {
      // the tunnel is closing: its streams fail with it
    }
  }

  /** No more frames are taken for `id`; the ones still on their way are dropped. */
  #forget(id: string): void {
    this.#open.delete(id);
    this.#ended.add(id);
    if (this.#ended.size > FORGOTTEN_IDS) this.#ended.delete(this.#ended.values().next().value!);
  }

  onTunnelClosed(): void {
    const streams = [...this.#open.values()];
    this.#open.clear();
    for (const s of streams) s.destroy(new Error('tunnel closed while the answer streamed'));
  }
}
