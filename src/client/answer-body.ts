import { Readable } from 'node:stream';
import type { ResponseHead } from '../protocol/index.js';

/** Answers up to this size (by their content-length) are read whole and posted in one write. */
const SMALL_BODY_BYTES = 64 * 1024;

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The head declares a body small enough to be read whole (a known content-length up to SMALL_BODY_BYTES). */
export function declaresSmallBody(head: ResponseHead): boolean {
  const declared = Number(headerValue(head.headers?.['content-length']));
  return Number.isInteger(declared) && declared >= 0 && declared <= SMALL_BODY_BYTES;
}

/**
 * Reads a body whose content-length is small and known (undici fails a body longer than its
 * content-length, so this stays bounded); keeps what was read and any error.
 */
export function readAll(body: Readable): Promise<{ chunks: Buffer[]; error?: unknown }> {
  // Plain events, not an async iterator: this runs once per relayed request.
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (error?: unknown) => {
      if (done) return;
      done = true;
      body.off('data', onData);
      resolve(error === undefined ? { chunks } : { chunks, error });
    };
    const onData = (chunk: Buffer | string) => chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    body.on('data', onData);
    body.once('end', () => finish());
    body.once('error', (err) => finish(err ?? new Error('body failed')));
    body.once('close', () => finish(body.readableEnded ? undefined : new Error('body closed before its end')));
  });
}

/**
 * The upload body of a streamed answer: the head, then the origin body pulled only as fast as
 * the upload drains; notes whether any body byte left and how many.
 */
export class StreamedAnswer {
  bodyStarted = false;
  bytes = 0;

  constructor(
    private readonly headBytes: Buffer,
    private readonly body: Readable,
  ) {}

  readable(): Readable {
    return Readable.from(this.chunks(), { objectMode: false });
  }

  private async *chunks(): AsyncGenerator<Buffer> {
    yield this.headBytes;
    this.bodyStarted = true;
    for await (const chunk of this.body) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      this.bytes += buf.length;
      yield buf;
    }
  }
}
