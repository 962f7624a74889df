import { Readable } from 'node:stream';
import { replayBody, type Egress } from '../http/egress.js';
import { delay } from '../http/backoff.js';
import { describeError, networkFailureCode } from '../http/errors.js';
import type { Logger } from '../observability/logger.js';
import { encodeResponseHead, encodeTunnelAnswer, RESPONSE_STREAM_CONTENT_TYPE, type ResponseHead } from '../protocol/index.js';

export interface ResponseTarget {
  /** Base URL of the server holding the waiting platform request (the tunnel's server). */
  serverUrl: string;
  serverId?: string | number;
  role: string;
  streamingID: string;
  requestId: string;
  /** Request headers whose snyk-* values are echoed on the POST, as the real client does. */
  requestHeaders: Record<string, string | string[]>;
  /**
   * Sends a small, complete answer as one frame on the tunnel the request came on (our server
   * offered it); false when it could not, and the answer is posted instead.
   */
  overTunnel?: (frame: Buffer) => Promise<boolean>;
}

export interface ResponseWriterOptions {
  egress: Egress;
  token: string;
  wireVersion: string;
  postTimeoutMs: number;
  logger: Logger;
  /** Attempts on connection errors before any body byte left (the contract: 3, 500 ms apart). */
  retries?: number;
  retryDelayMs?: number;
}

/**
 * Drops an origin body we will not deliver. undici's body emits 'error' (RequestAbortedError)
 * when destroyed unread, and with no listener that would crash the process: listen first.
 */
export function discardBody(body: Readable | Buffer | string | undefined): void {
  if (!body || typeof body !== 'object' || Buffer.isBuffer(body)) return;
  body.on('error', () => undefined);
  body.destroy();
}

export class ResponseUploadError extends Error {
  readonly code = 'RESPONSE_UPLOAD_FAILED';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The URL of `POST /response-data/<token>/<streamingID>?[server_id=..&]connection_role=..`. */
export function responseDataUrl(target: Pick<ResponseTarget, 'serverUrl' | 'serverId' | 'role' | 'streamingID'>, token: string): string {
  const params = new URLSearchParams();
  if (target.serverId) params.set('server_id', String(target.serverId));
  params.set('connection_role', target.role);
  return `${target.serverUrl.replace(/\/+$/, '')}/response-data/${encodeURIComponent(token)}/${encodeURIComponent(target.streamingID)}?${params.toString()}`;
}

/** Origin and path of a target's response-data URL, split once per server and role (not per answer). */
interface UrlParts {
  origin: string;
  /** Path up to the encoded streamingID. */
  prefix: string;
  /** `?...` */
  query: string;
}

const STREAMING_ID_SLOT = 'x';

function urlParts(target: Pick<ResponseTarget, 'serverUrl' | 'serverId' | 'role'>, token: string): UrlParts {
  const url = new URL(responseDataUrl({ ...target, streamingID: STREAMING_ID_SLOT }, token));
  return { origin: url.origin, prefix: url.pathname.slice(0, -STREAMING_ID_SLOT.length), query: url.search };
}

/** The server's answer to an upload is a short JSON: anything longer is not a broker server. */
const MAX_UPLOAD_ANSWER_BYTES = 64 * 1024;

/** Answers up to this size (by their content-length) are read whole and posted in one write. */
const SMALL_BODY_BYTES = 64 * 1024;

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Reads a body whose content-length is small and known (undici fails a body longer than its
 * content-length, so this stays bounded); keeps what was read and any error.
 */
function readAll(body: Readable): Promise<{ chunks: Buffer[]; error?: unknown }> {
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
 * Streams an answer to the broker server: [uint32 LE head length][JSON head][body bytes as
 * they come from the origin]. The origin body is pulled only as fast as the upload drains
 * (async iterable body: backpressure end to end, nothing buffered whole).
 */
export function createResponseWriter(opts: ResponseWriterOptions) {
  const retries = opts.retries ?? 3;
  const retryDelayMs = opts.retryDelayMs ?? 500;
  const log = opts.logger;
  const parts = new Map<string, UrlParts>();

  function partsFor(target: ResponseTarget): UrlParts {
    const key = `${target.serverUrl}\n${target.serverId ?? ''}\n${target.role}`;
    let p = parts.get(key);
    if (!p) {
      p = urlParts(target, opts.token);
      // Placements change rarely; a bound keeps a long-lived client from collecting stale ones.
      if (parts.size >= 64) parts.clear();
      parts.set(key, p);
    }
    return p;
  }

  async function send(target: ResponseTarget, head: ResponseHead, body?: Readable | Buffer | string): Promise<{ bytes: number; via: 'tunnel' | 'response-data' }> {
    const headBytes = encodeResponseHead(head);
    const retryErrors: string[] = [];
    // A small answer (the egress reads those whole) goes as one buffer (head + body): one write
    // on the socket instead of a chunked stream of three, same bytes on the wire. Larger ones
    // keep streaming with backpressure.
    let whole: Buffer | undefined;
    if (body === undefined) whole = headBytes;
    else if (typeof body === 'string' || Buffer.isBuffer(body)) whole = Buffer.concat([headBytes, Buffer.from(body)]);
    else {
      const declared = Number(headerValue(head.headers?.['content-length']));
      if (Number.isInteger(declared) && declared >= 0 && declared <= SMALL_BODY_BYTES) {
        const read = await readAll(body);
        if (read.error === undefined) whole = Buffer.concat([headBytes, ...read.chunks]);
        else body = replayBody(read.chunks, read.error);
      }
    }
    if (whole !== undefined && target.overTunnel && (await target.overTunnel(encodeTunnelAnswer(target.streamingID, whole)))) {
      return { bytes: whole.length - headBytes.length, via: 'tunnel' };
    }
    for (let attempt = 0; ; attempt++) {
      let bodyStarted = false;
      let bytes = 0;
      async function* stream(): AsyncGenerator<Buffer> {
        yield headBytes;
        if (body === undefined) return;
        bodyStarted = true;
        if (typeof body === 'string' || Buffer.isBuffer(body)) {
          const buf = Buffer.from(body);
          bytes += buf.length;
          yield buf;
          return;
        }
        for await (const chunk of body) {
          const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
          bytes += buf.length;
          yield buf;
        }
      }
      const headers: Record<string, string> = {
        'content-type': RESPONSE_STREAM_CONTENT_TYPE,
        'snyk-request-id': target.requestId,
        'user-agent': `Snyk Broker client ${opts.wireVersion}`,
        'x-broker-client-version': opts.wireVersion,
        'snyk-broker-retry-count': String(attempt),
      };
      if (retryErrors.length > 0) headers['snyk-broker-retry-errors'] = retryErrors.join(',');
      for (const name of ['snyk-acting-org-public-id', 'snyk-acting-group-public-id', 'snyk-product-line', 'snyk-flow-name']) {
        const v = target.requestHeaders[name];
        if (typeof v === 'string') headers[name] = v;
      }
      try {
        if (whole !== undefined) {
          // A whole answer can be sent again as it is: a second copy of an answer already taken
          // is refused by the server (unknown stream), so connection errors are retried as for
          // an upload that had not started.
          bytes = whole.length - headBytes.length;
          const p = partsFor(target);
          const res = await opts.egress.requestBuffered({
            origin: p.origin,
            path: `${p.prefix}${encodeURIComponent(target.streamingID)}${p.query}`,
            method: 'POST',
            headers,
            body: whole,
            // Sent in one write, so the bound is on the server's answer (head, then body).
            timeoutMs: opts.postTimeoutMs,
            maxResponseBytes: MAX_UPLOAD_ANSWER_BYTES,
          });
          if (res.statusCode < 200 || res.statusCode >= 300) {
            throw new ResponseUploadError(`broker server answered ${res.statusCode} to response-data: ${res.body.toString('utf8', 0, 200)}`);
          }
          return { bytes, via: 'response-data' };
        }
        const res = await opts.egress.request(responseDataUrl(target, opts.token), {
          method: 'POST',
          headers,
          body: Readable.from(stream(), { objectMode: false }),
          signal: AbortSignal.timeout(opts.postTimeoutMs),
        });
        const text = await res.body.text();
        if (res.statusCode < 200 || res.statusCode >= 300) {
          throw new ResponseUploadError(`broker server answered ${res.statusCode} to response-data: ${text.slice(0, 200)}`);
        }
        return { bytes, via: 'response-data' };
      } catch (err) {
        // A connection that failed before any body byte left: sent again (the contract retries these).
        const retryable = bodyStarted ? undefined : networkFailureCode(err);
        if (retryable !== undefined && attempt < retries) {
          retryErrors.push(retryable);
          log.warn({ streamingID: target.streamingID, attempt: attempt + 1, err: describeError(err) }, 'response-data upload failed to connect; retrying');
          await delay(retryDelayMs);
          continue;
        }
        discardBody(body);
        if (err instanceof ResponseUploadError) throw err;
        throw new ResponseUploadError(`response-data upload failed: ${describeError(err)}`, { cause: err });
      }
    }
  }

  return { send };
}

export type ResponseWriter = ReturnType<typeof createResponseWriter>;
