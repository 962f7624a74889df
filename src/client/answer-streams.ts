import type { Readable } from 'node:stream';
import { parseCredit, parseDone, STREAM_ABORT, STREAM_DATA, STREAM_END, STREAM_WINDOW_BYTES, streamFramePrefix } from '../protocol/index.js';
import { describeError } from '../http/errors.js';
import type { FrameSink, OutFrame } from './masked-frames.js';

/**
 * Stream bytes per data frame at most. Small on purpose: the server's `ws` hands on a frame that
 * lies within one socket read (64 KiB) as a view of it, but copies every frame that spans two
 * reads into a new buffer; 64 KiB frames nearly always span, 16 KiB ones mostly do not (a
 * quarter of the bytes copied instead of all). The origin's chunks are gathered or split to
 * this size, and the frames leave in blocks (masked-frames.ts), so small frames do not mean
 * many writes. A frame that is not full leaves at the end of the event-loop turn, so a slow
 * origin's bytes do not wait for more.
 */
export const MAX_FRAME_PAYLOAD = 16 * 1024;

/** A streamed answer that did not make it; `bodyStarted`: origin bytes had left (nothing can be sent again). */
export class AnswerStreamError extends Error {
  readonly code = 'ANSWER_STREAM_FAILED';
  constructor(message: string, readonly bodyStarted: boolean, options?: { cause?: unknown }) {
    super(message, options);
  }
}

interface OutgoingStream {
  /** Payload bytes the server allows in all (cumulative). */
  limit: number;
  sent: number;
  verdict?: { status: number; message: string };
  failure?: Error;
  /** Wakes the sender: more credit, a verdict or a failure arrived. */
  wake?: () => void;
  /** The data frame being filled, and whether its send at the end of the turn is scheduled. */
  frame?: OutFrame;
  flushing?: boolean;
}

/**
 * The answers streaming over one tunnel connection (our server only): data frames sent as credit
 * allows, the server's credit and verdict events taken in. When the connection goes, every
 * stream on it fails.
 */
export class OutgoingAnswerStreams {
  readonly #streams = new Map<string, OutgoingStream>();
  #closed: Error | undefined;

  constructor(private readonly sink: FrameSink, private readonly framePayload = MAX_FRAME_PAYLOAD) {}

  get size(): number {
    return this.#streams.size;
  }

  onCredit(args: unknown[]): void {
    const c = parseCredit(args);
    const s = c && this.#streams.get(c.streamingID);
    if (!s || c.limit <= s.limit) return;
    s.limit = c.limit;
    s.wake?.();
  }

  onDone(args: unknown[]): void {
    const d = parseDone(args);
    const s = d && this.#streams.get(d.streamingID);
    if (!s || s.verdict) return;
    s.verdict = { status: d.status, message: d.message };
    s.wake?.();
  }

  /** The connection is gone: streams still sending or waiting for their verdict fail. */
  close(err: Error): void {
    this.#closed = err;
    for (const s of this.#streams.values()) {
      s.failure ??= err;
      s.wake?.();
    }
  }

  /**
   * Sends `head` then the body, at most a window ahead of what the server's reader took, then
   * waits for the server's verdict. Resolves with the body's size; rejects with an AnswerStreamError.
   */
  async send(streamingID: string, head: Buffer, body: Readable, timeoutMs: number): Promise<number> {
    if (this.#closed) throw new AnswerStreamError(`answer stream not started: ${this.#closed.message}`, false);
    if (this.#streams.has(streamingID)) throw new AnswerStreamError(`answer stream ${streamingID} is already sending`, false);
    const s: OutgoingStream = { limit: STREAM_WINDOW_BYTES, sent: 0 };
    this.#streams.set(streamingID, s);
    const timer = setTimeout(() => {
      s.failure ??= new AnswerStreamError(`answer stream took longer than ${timeoutMs} ms`, true);
      s.wake?.();
    }, timeoutMs);
    const data = streamFramePrefix(STREAM_DATA, streamingID);
    let bytes = 0;
    try {
      await this.#write(s, data, head);
      try {
        for await (const chunk of body) {
          const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
          await this.#write(s, data, buf);
          bytes += buf.length;
        }
      } catch (err) {
        if (err instanceof AnswerStreamError) throw err;
        // The origin broke off: the server ends the platform's answer as a broken upload would.
        this.#flush(s);
        this.#control(s, streamFramePrefix(STREAM_ABORT, streamingID), Buffer.from(describeError(err).slice(0, 200)));
        throw new AnswerStreamError(`origin body broke off: ${describeError(err)}`, true, { cause: err });
      }
      this.#flush(s);
      this.#control(s, streamFramePrefix(STREAM_END, streamingID));
      const verdict = await this.#until(s, () => s.verdict !== undefined);
      if (verdict.status < 200 || verdict.status >= 300) throw new AnswerStreamError(`broker server answered ${verdict.status} to the answer stream: ${verdict.message}`, true);
      return bytes;
    } finally {
      // A frame still being filled when the stream failed is never sent.
      s.frame?.discard();
      s.frame = undefined;
      clearTimeout(timer);
      this.#streams.delete(streamingID);
    }
  }

  /** Adds `chunk` to the stream's data frames, within the credit: waits (origin unread) while there is none. */
  async #write(s: OutgoingStream, prefix: Buffer, chunk: Buffer): Promise<void> {
    for (let at = 0; at < chunk.length; ) {
      if (!s.frame) {
        await this.#until(s, () => s.sent < s.limit);
        s.frame = this.sink.open(prefix.length + Math.min(this.framePayload, s.limit - s.sent));
        s.frame.append(prefix);
      }
      const n = Math.min(s.frame.room, chunk.length - at);
      s.frame.append(n === chunk.length ? chunk : chunk.subarray(at, at + n));
      s.sent += n;
      at += n;
      if (s.frame.room === 0) this.#flush(s);
    }
    if (s.frame && !s.flushing) {
      s.flushing = true;
      setImmediate(() => {
        s.flushing = false;
        this.#flush(s);
      });
    }
  }

  /** The frame being filled goes out (if any). */
  #flush(s: OutgoingStream): void {
    const frame = s.frame;
    if (!frame) return;
    s.frame = undefined;
    this.#send(s, frame);
  }

  /** An end or abort frame: no payload counted against the credit. */
  #control(s: OutgoingStream, prefix: Buffer, payload?: Buffer): void {
    const frame = this.sink.open(prefix.length + (payload?.length ?? 0));
    frame.append(prefix);
    if (payload) frame.append(payload);
    this.#send(s, frame);
  }

  /** One frame out; a failed write fails the stream (the connection is going). */
  #send(s: OutgoingStream, frame: OutFrame): void {
    frame.send((err) => {
      if (!err) return;
      s.failure ??= new AnswerStreamError(`answer stream write failed: ${err.message}`, true, { cause: err });
      s.wake?.();
    });
  }

  /** Resolves once `ready()`; a failure, or a verdict that came before it was asked for, rejects. */
  #until(s: OutgoingStream, ready: () => boolean): Promise<{ status: number; message: string }> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (s.failure) return reject(s.failure instanceof AnswerStreamError ? s.failure : new AnswerStreamError(s.failure.message, true, { cause: s.failure }));
        if (ready()) return resolve(s.verdict ?? { status: 0, message: '' });
        // The server gave its verdict before the answer was all sent: it no longer takes it.
        if (s.verdict) return reject(new AnswerStreamError(`broker server stopped the answer stream (${s.verdict.status}): ${s.verdict.message}`, true));
        s.wake = () => {
          s.wake = undefined;
          check();
        };
      };
      check();
    });
  }
}
