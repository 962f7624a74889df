import type { Readable } from 'node:stream';
import { replayBody, type Egress } from '../http/egress.js';
import { delay } from '../http/backoff.js';
import { describeError, networkFailureCode } from '../http/errors.js';
import type { Logger } from '../observability/logger.js';
import { encodeResponseHead, encodeTunnelAnswer, RESPONSE_STREAM_CONTENT_TYPE, type ResponseHead } from '../protocol/index.js';
import { declaresSmallBody, readAll, StreamedAnswer } from './answer-body.js';
import { createUrlPartsCache, responseDataUrl } from './response-data-url.js';
import { UNIVERSAL_PATH_PREFIX, type PlatformAuth } from './platform-auth.js';

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
  /**
   * Streams a larger answer (head bytes, then the body) over that tunnel with flow control (our
   * server offered it): resolves with the body's size, or false when it could not start and the
   * answer is posted instead.
   */
  streamOverTunnel?: (head: Buffer, body: Readable, timeoutMs: number) => Promise<number | false>;
}

export interface ResponseWriterOptions {
  egress: Egress;
  token: string;
  wireVersion: string;
  postTimeoutMs: number;
  logger: Logger;
  /** Universal Broker: uploads go under /hidden/brokers and carry the OAuth bearer. */
  auth?: PlatformAuth;
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

/** The server's answer to an upload is a short JSON: anything longer is not a broker server. */
const MAX_UPLOAD_ANSWER_BYTES = 64 * 1024;

/** Request headers echoed on the upload, as the real client does. */
const ECHOED_HEADERS = ['snyk-acting-org-public-id', 'snyk-acting-group-public-id', 'snyk-product-line', 'snyk-flow-name'];

function uploadHeaders(target: ResponseTarget, wireVersion: string, attempt: number, retryErrors: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': RESPONSE_STREAM_CONTENT_TYPE,
    'snyk-request-id': target.requestId,
    'user-agent': `Snyk Broker client ${wireVersion}`,
    'x-broker-client-version': wireVersion,
    'snyk-broker-retry-count': String(attempt),
  };
  if (retryErrors.length > 0) headers['snyk-broker-retry-errors'] = retryErrors.join(',');
  for (const name of ECHOED_HEADERS) {
    const v = target.requestHeaders[name];
    if (typeof v === 'string') headers[name] = v;
  }
  return headers;
}

function refusedUpload(statusCode: number, answer: string): ResponseUploadError {
  return new ResponseUploadError(`broker server answered ${statusCode} to response-data: ${answer}`);
}

/**
 * An answer ready to send: `answer` is one buffer (head + body, `headLength` bytes of head) or
 * the origin body to stream after `headBytes`; `body` is what a failure discards.
 */
interface Prepared {
  answer: Buffer | Readable;
  headLength: number;
  headBytes?: Buffer;
  body: Readable | Buffer | string | undefined;
}

/**
 * A small answer (the egress reads those whole) goes as one buffer (head + body): one write on
 * the socket instead of a chunked stream of three, same bytes on the wire. Larger ones keep
 * streaming with backpressure. A body already in memory needs no turn of the event loop.
 */
function prepare(head: ResponseHead, body: Readable | Buffer | string | undefined): Prepared | Promise<Prepared> {
  if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) {
    const whole = encodeResponseHead(head, body);
    return { answer: whole, headLength: whole.length - (body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.length), body };
  }
  return readIfSmall(head, body);
}

async function readIfSmall(head: ResponseHead, body: Readable): Promise<Prepared> {
  const headBytes = encodeResponseHead(head);
  const streamed = { headLength: headBytes.length, headBytes };
  if (!declaresSmallBody(head)) return { ...streamed, answer: body, body };
  const read = await readAll(body);
  if (read.error === undefined) return { ...streamed, answer: Buffer.concat([headBytes, ...read.chunks]), body };
  // What was read is streamed again, then the error.
  const replay = replayBody(read.chunks, read.error);
  return { ...streamed, answer: replay, body: replay };
}

/** Over the tunnel, where our server offered it: a whole answer as one frame, a stream with flow control. Undefined: post it. */
async function sendOverTunnel(target: ResponseTarget, p: Prepared, timeoutMs: number): Promise<{ bytes: number; via: 'tunnel' | 'tunnel-stream' } | undefined> {
  if (Buffer.isBuffer(p.answer)) {
    if (target.overTunnel && (await target.overTunnel(encodeTunnelAnswer(target.streamingID, p.answer)))) return { bytes: p.answer.length - p.headLength, via: 'tunnel' };
    return undefined;
  }
  if (!target.streamOverTunnel) return undefined;
  let bytes: number | false;
  try {
    bytes = await target.streamOverTunnel(p.headBytes!, p.answer, timeoutMs);
  } catch (err) {
    discardBody(p.body);
    throw new ResponseUploadError(`answer stream over the tunnel failed: ${describeError(err)}`, { cause: err });
  }
  return bytes === false ? undefined : { bytes, via: 'tunnel-stream' };
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
  const pathPrefix = opts.auth ? UNIVERSAL_PATH_PREFIX : '';
  const partsFor = createUrlPartsCache(opts.token, pathPrefix);

  /** A refused upload; a 401 means the bearer is stale, so the next call fetches a fresh one. */
  function refused(statusCode: number, answer: string): ResponseUploadError {
    if (statusCode === 401) opts.auth?.invalidate();
    return refusedUpload(statusCode, answer);
  }

  async function bearer(body: Readable | Buffer | string | undefined): Promise<string> {
    try {
      return await opts.auth!.authorization();
    } catch (err) {
      discardBody(body);
      throw new ResponseUploadError(`response-data upload has no platform token: ${describeError(err)}`, { cause: err });
    }
  }

  /** One buffer (head + body) POSTed in one write. */
  function postWhole(target: ResponseTarget, headers: Record<string, string>, whole: Buffer) {
    const p = partsFor(target);
    return opts.egress.requestBuffered({
      origin: p.origin,
      path: `${p.prefix}${encodeURIComponent(target.streamingID)}${p.query}`,
      method: 'POST',
      headers,
      body: whole,
      // Sent in one write, so the bound is on the server's answer (head, then body).
      timeoutMs: opts.postTimeoutMs,
      maxResponseBytes: MAX_UPLOAD_ANSWER_BYTES,
    });
  }

  async function send(target: ResponseTarget, head: ResponseHead, body?: Readable | Buffer | string): Promise<{ bytes: number; via: 'tunnel' | 'tunnel-stream' | 'response-data' }> {
    const ready = prepare(head, body);
    const p = ready instanceof Promise ? await ready : ready;
    if (target.overTunnel || target.streamOverTunnel) {
      const sent = await sendOverTunnel(target, p, opts.postTimeoutMs);
      if (sent) return sent;
    }
    return upload(target, p);
  }

  /** POST /response-data, with the contract's retries of connections that failed before any body byte left. */
  async function upload(target: ResponseTarget, { answer, headLength, headBytes, body }: Prepared): Promise<{ bytes: number; via: 'response-data' }> {
    const retryErrors: string[] = [];
    for (let attempt = 0; ; attempt++) {
      const headers = uploadHeaders(target, opts.wireVersion, attempt, retryErrors);
      if (opts.auth) headers.authorization = await bearer(body);
      let streamed: StreamedAnswer | undefined;
      try {
        if (Buffer.isBuffer(answer)) {
          // A whole answer can be sent again as it is: a second copy of an answer already taken
          // is refused by the server (unknown stream), so connection errors are retried as for
          // an upload that had not started.
          const res = await postWhole(target, headers, answer);
          if (res.statusCode < 200 || res.statusCode >= 300) throw refused(res.statusCode, res.body.toString('utf8', 0, 200));
          return { bytes: answer.length - headLength, via: 'response-data' };
        }
        streamed = new StreamedAnswer(headBytes!, answer);
        const res = await opts.egress.request(responseDataUrl(target, opts.token, pathPrefix), {
          method: 'POST',
          headers,
          body: streamed.readable(),
          signal: AbortSignal.timeout(opts.postTimeoutMs),
        });
        const text = await res.body.text();
        if (res.statusCode < 200 || res.statusCode >= 300) throw refused(res.statusCode, text.slice(0, 200));
        return { bytes: streamed.bytes, via: 'response-data' };
      } catch (err) {
        // A connection that failed before any body byte left: sent again (the contract retries these).
        const retryable = streamed?.bodyStarted ? undefined : networkFailureCode(err);
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
