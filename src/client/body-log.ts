import { Transform, type TransformCallback } from 'node:stream';
import type { Logger } from '../observability/logger.js';

/**
 * LOG_ENABLE_BODY: request and response bodies of relayed requests go into debug log lines (as
 * snyk-broker's `requestBody` / `httpBody` fields do). A body is logged in one line, capped, so
 * the log scrubber sees each credential whole instead of split across per-chunk lines.
 */
export const LOGGED_BODY_BYTES = 64 * 1024;

/** The text of a body for a log line, capped. */
export function bodyForLog(body: Buffer | string | undefined, limit = LOGGED_BODY_BYTES): { body: string; bodyBytes: number; truncated?: true } {
  if (body === undefined) return { body: '', bodyBytes: 0 };
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  return buf.length > limit ? { body: buf.subarray(0, limit).toString('utf8'), bodyBytes: buf.length, truncated: true } : { body: buf.toString('utf8'), bodyBytes: buf.length };
}

/**
 * Passes a response body through unchanged (backpressure intact) and logs its first `limit`
 * bytes once it ends or breaks off.
 */
export class BodyLogTap extends Transform {
  readonly #chunks: Buffer[] = [];
  #kept = 0;
  #total = 0;
  #logged = false;

  constructor(
    private readonly log: Logger,
    private readonly fields: Record<string, unknown>,
    private readonly limit = LOGGED_BODY_BYTES,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#total += chunk.length;
    if (this.#kept < this.limit) {
      const part = chunk.subarray(0, this.limit - this.#kept);
      this.#chunks.push(Buffer.from(part));
      this.#kept += part.length;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.#write(false);
    cb();
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    if (err) this.#write(true);
    cb(err);
  }

  #write(broken: boolean): void {
    if (this.#logged) return;
    this.#logged = true;
    const text = Buffer.concat(this.#chunks).toString('utf8');
    this.log.debug({ ...this.fields, responseBody: text, bodyBytes: this.#total, ...(this.#total > this.limit ? { truncated: true } : {}), ...(broken ? { broken: true } : {}) }, 'origin answer body');
  }
}
