import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import { constants, createBrotliDecompress, createUnzip } from 'node:zlib';

/**
 * RES_BODY_URL_SUB (snyk-broker 5.22.14): in JSON answers (content-type containing `json`), every
 * `<scheme>://<RES_BODY_URL_SUB without its scheme>` becomes
 * `http://internal-broker-server-next/broker/<BROKER_TOKEN>`, so the package URLs in an
 * Artifactory or Nexus packument point back through the broker and npm can fetch the tarballs.
 *
 * Unlike snyk-broker (which converts each chunk to a string and holds back only a tail that
 * follows a `"`), this works on bytes: a URL split across any chunk boundary, a multi-byte
 * character split across chunks and the final held bytes all come out right. Compressed JSON
 * (gzip, deflate, br) is decompressed first rather than mangled. The answer loses its
 * content-length when streamed (the new length is unknown until the end) and gets the exact one
 * when the body is already whole.
 */
export const RES_BODY_URL_SUB_TARGET = 'http://internal-broker-server-next/broker/';

/** A URL scheme longer than this is not one: bounds what is held back between chunks. */
export const MAX_SCHEME_BYTES = 64;

const EMPTY = Buffer.alloc(0);

function isWordByte(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x5f;
}

/** The part of RES_BODY_URL_SUB that is matched after `<scheme>:` (`//host/path`, no trailing `/`). */
export function protocolFree(url: string): string {
  return url.replace(/^(\w+:)?\/\//, '').replace(/\/+$/, '');
}

/**
 * The byte-level rewrite: `<word chars>:` + `//` + the URL without scheme → replacement. Same
 * leftmost, non-overlapping matches as snyk-broker's `(\w+:)//<url>` regex with `g`, with the
 * URL taken literally (snyk-broker does not escape it, so its `.` matches any character).
 */
export class UrlSubstitution {
  readonly needle: Buffer;
  readonly replacement: Buffer;

  constructor(url: string, replacement: string) {
    this.needle = Buffer.from(`://${protocolFree(url)}`, 'utf8');
    this.replacement = Buffer.from(replacement, 'utf8');
  }

  /**
   * Rewrites `buf`; unless `final`, keeps back the shortest tail that could still start a match
   * (a partial `://url` and the scheme before it) for the next call.
   */
  step(buf: Buffer, final: boolean): { out: Buffer[]; rest: Buffer } {
    const out: Buffer[] = [];
    const { needle } = this;
    let pos = 0;
    let from = 0;
    for (;;) {
      const i = buf.indexOf(needle, from);
      if (i < 0) break;
      let s = i;
      while (s > pos && i - s < MAX_SCHEME_BYTES && isWordByte(buf[s - 1])) s--;
      if (s === i) {
        from = i + 1; // no scheme before it: not a match
        continue;
      }
      if (s > pos) out.push(buf.subarray(pos, s));
      out.push(this.replacement);
      pos = i + needle.length;
      from = pos;
    }
    if (final) {
      if (pos < buf.length) out.push(buf.subarray(pos));
      return { out, rest: EMPTY };
    }
    // The earliest tail that is a proper prefix of the needle (it starts with ':').
    let hold = buf.length;
    for (let k = Math.max(pos, buf.length - needle.length + 1); k < buf.length; k++) {
      if (buf[k] === needle[0] && buf.compare(needle, 0, buf.length - k, k) === 0) {
        hold = k;
        break;
      }
    }
    // ...and the scheme in front of it, which is still part of a match to come.
    const limit = Math.max(pos, hold - MAX_SCHEME_BYTES);
    while (hold > limit && isWordByte(buf[hold - 1])) hold--;
    if (hold > pos) out.push(buf.subarray(pos, hold));
    return { out, rest: hold < buf.length ? Buffer.from(buf.subarray(hold)) : EMPTY };
  }

  /** A whole body at once. */
  rewrite(body: Buffer): Buffer {
    const { out } = this.step(body, true);
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }
}

/** A streaming rewrite: holds back at most a partial URL and its scheme between chunks. */
export class UrlSubstitutionTransform extends Transform {
  readonly #sub: UrlSubstitution;
  #rest: Buffer = EMPTY;

  constructor(sub: UrlSubstitution) {
    super();
    this.#sub = sub;
  }

  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const buf = this.#rest.length > 0 ? Buffer.concat([this.#rest, data]) : data;
    const { out, rest } = this.#sub.step(buf, false);
    this.#rest = rest;
    for (const b of out) this.push(b);
    cb();
  }

  override _flush(cb: TransformCallback): void {
    const { out } = this.#sub.step(this.#rest, true);
    this.#rest = EMPTY;
    for (const b of out) this.push(b);
    cb();
  }
}

type Headers = Record<string, string | string[]>;

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** What RES_BODY_URL_SUB does to one origin answer. */
export interface BodyUrlRewriter {
  /** Whether this answer is rewritten (snyk-broker: a content-type that contains `json`). */
  applies(headers: Headers): boolean;
  /** The answer's headers and body after the rewrite (call only when `applies`). */
  rewrite(headers: Headers, body: Buffer | Readable): { headers: Headers; body: Buffer | Readable };
}

function without(headers: Headers, ...names: string[]): Headers {
  const out: Headers = {};
  for (const [k, v] of Object.entries(headers)) if (!names.includes(k.toLowerCase())) out[k] = v;
  return out;
}

/** `RES_BODY_URL_SUB` and the broker token → the rewriter of JSON answers. */
export function createBodyUrlRewriter(resBodyUrlSub: string, brokerToken: string): BodyUrlRewriter {
  const sub = new UrlSubstitution(resBodyUrlSub, `${RES_BODY_URL_SUB_TARGET}${brokerToken}`);
  return {
    applies(headers) {
      return (first(headers['content-type']) ?? '').includes('json');
    },
    rewrite(headers, body) {
      const encoding = (first(headers['content-encoding']) ?? 'identity').trim().toLowerCase();
      if (encoding === 'identity' || encoding === '') {
        if (Buffer.isBuffer(body)) {
          const out = sub.rewrite(body);
          // Whole body: its new length is known (snyk-broker's buffered sender does the same).
          const next = without(headers, 'content-length');
          if (Object.keys(headers).some((k) => k.toLowerCase() === 'content-length')) next['content-length'] = String(out.length);
          return { headers: next, body: out };
        }
        return { headers: without(headers, 'content-length'), body: pipeline(body, new UrlSubstitutionTransform(sub), () => undefined) };
      }
      // Sync-flush finish: an empty body (HEAD, 304) or a cut one is not a decompression error.
      const decompress =
        encoding === 'gzip' || encoding === 'x-gzip' || encoding === 'deflate'
          ? createUnzip({ finishFlush: constants.Z_SYNC_FLUSH })
          : encoding === 'br'
            ? createBrotliDecompress({ finishFlush: constants.BROTLI_OPERATION_FLUSH })
            : undefined;
      // An encoding we cannot read is passed on untouched rather than corrupted.
      if (!decompress) return { headers, body };
      const source = Buffer.isBuffer(body) ? Readable.from([body]) : body;
      return { headers: without(headers, 'content-length', 'content-encoding'), body: pipeline(source, decompress, new UrlSubstitutionTransform(sub), () => undefined) };
    },
  };
}
