import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { Agent, EnvHttpProxyAgent, errors as undiciErrors, requestUrl } from './undici-parts.js';

export interface EgressOptions {
  /** Extra CA bundle files (PEM) trusted on top of the system roots. */
  caFiles?: string[];
  /** false only when the user explicitly turned TLS verification off. */
  rejectUnauthorized?: boolean;
  connectTimeoutMs?: number;
  /** Time to wait for response headers; 0 disables (long origin calls are bounded elsewhere). */
  headersTimeoutMs?: number;
  /** Idle time between body chunks; 0 disables. */
  bodyTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  /** Proxy settings; default: HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment. */
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
}

/**
 * The one egress stack: every outbound HTTP call of every program goes through a dispatcher
 * made here, so proxy, CA and timeouts are decided in one place.
 */
export type EgressRequestOptions = Partial<Omit<Dispatcher.RequestOptions, 'origin' | 'path'>>;

export interface BufferedRequest {
  /** `http(s)://host[:port]`, no path. */
  origin: string;
  /** Path and query, starting with `/`. */
  path: string;
  method: Dispatcher.HttpMethod;
  headers: Record<string, string>;
  body?: Buffer;
  /** Bound on waiting for the response head, and on each pause while its body arrives. */
  timeoutMs: number;
  /** The response body is read whole up to this size; a longer one fails the request. */
  maxResponseBytes: number;
}

export interface BufferedResponse {
  statusCode: number;
  body: Buffer;
}

export interface AnswerRequest {
  origin: string;
  path: string;
  method: Dispatcher.HttpMethod;
  headers: Record<string, string | string[]>;
  body?: Buffer | string;
  /** An answer whose content-length is at most this is read whole before resolving. */
  bufferUpTo: number;
  /**
   * An answer of unknown size (chunked) is held this long: if it ends within the time and
   * within `bufferUpTo` it comes whole too; otherwise it streams from what arrived. 0: streams.
   */
  holdUnknownMs?: number;
}

export interface Answer {
  statusCode: number;
  headers: Record<string, string | string[]>;
  /**
   * The whole body when its announced size was small; otherwise a stream with backpressure.
   * A small body that broke off comes as a stream of what arrived, then the error.
   */
  body: Buffer | Readable;
}

export interface Egress {
  readonly dispatcher: Dispatcher;
  request(url: string | URL, options?: EgressRequestOptions): Promise<Dispatcher.ResponseData<unknown>>;
  /**
   * A request with a small body in one buffer whose small answer is read whole: no response
   * stream, promise adapter or abort signal per call (hot paths: one per relayed request).
   */
  requestBuffered(request: BufferedRequest): Promise<BufferedResponse>;
  /** An origin call whose small answer (by content-length) is read whole: no stream for it. */
  requestAnswer(request: AnswerRequest): Promise<Answer>;
  close(): Promise<void>;
}

export class ResponseTooLargeError extends Error {
  readonly code = 'UND_ERR_RES_EXCEEDED_MAX_SIZE';
  constructor(limit: number) {
    super(`response body exceeds ${limit} bytes`);
  }
}

/** undici's handler interface for requestBuffered; a class, so one allocation per call (see AnswerHandler). */
class BufferedHandler {
  #statusCode = 0;
  #size = 0;
  readonly #chunks: Buffer[] = [];
  #abort: ((err: Error) => void) | undefined;

  constructor(
    private readonly maxResponseBytes: number,
    private readonly resolve: (res: BufferedResponse) => void,
    private readonly reject: (err: Error) => void,
  ) {}

  onConnect(abort: (err: Error) => void): void {
    this.#abort = abort;
  }

  onHeaders(status: number): boolean {
    if (status >= 200) this.#statusCode = status; // 1xx: informational, the real answer follows
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.#size += chunk.length;
    if (this.#size > this.maxResponseBytes) {
      this.#abort?.(new ResponseTooLargeError(this.maxResponseBytes));
      return false;
    }
    this.#chunks.push(chunk);
    return true;
  }

  onComplete(): void {
    const chunks = this.#chunks;
    this.resolve({ statusCode: this.#statusCode, body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks) });
  }

  onError(err: Error): void {
    this.reject(err);
  }
}

function requestBuffered(dispatcher: Dispatcher, r: BufferedRequest): Promise<BufferedResponse> {
  return new Promise((resolve, reject) => {
    dispatcher.dispatch(
      { origin: r.origin, path: r.path, method: r.method, headers: r.headers, body: r.body, headersTimeout: r.timeoutMs, bodyTimeout: r.timeoutMs },
      new BufferedHandler(r.maxResponseBytes, resolve, reject),
    );
  });
}

async function loadCa(files: string[]): Promise<string[] | undefined> {
  if (files.length === 0) return undefined;
  // Passing `ca` replaces Node's default store, so the system roots and NODE_EXTRA_CA_CERTS go in too.
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  const all = extra && !files.includes(extra) ? [...files, extra] : files;
  const pems = await Promise.all(all.map((f) => readFile(f, 'utf8')));
  return [...rootCertificates, ...pems];
}

/** Response headers as undici's request() gives them: lower-case names, repeated ones as arrays. */
function parseRawHeaders(raw: Buffer[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toString('latin1').toLowerCase();
    const value = raw[i + 1].toString('latin1');
    const prev = Object.hasOwn(out, name) ? out[name] : undefined;
    if (prev === undefined) {
      // A header named __proto__ must stay a header, not set the object's prototype.
      if (name === '__proto__') Object.defineProperty(out, name, { value, enumerable: true, configurable: true, writable: true });
      else out[name] = value;
    } else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [prev, value];
  }
  return out;
}

/** What arrived of a body that broke off, then its error: as a stream would have delivered it. */
export function replayBody(chunks: Buffer[], error: unknown): Readable {
  let i = 0;
  return new Readable({
    read() {
      if (i < chunks.length) this.push(chunks[i++]);
      else this.destroy(error instanceof Error ? error : new Error(String(error)));
    },
  });
}

/**
 * undici's handler interface (the one its own request() is built on) for requestAnswer. A class,
 * not an object of closures: one allocation per origin call instead of one per callback.
 */
class AnswerHandler {
  #abort: ((err: Error) => void) | undefined;
  #resumeParser: (() => void) | undefined;
  #statusCode = 0;
  #headers: Record<string, string | string[]> = {};
  #chunks: Buffer[] | undefined;
  #stream: Readable | undefined;
  #ended = false;
  // Holding an answer of unknown size: bytes so far, and the time bound.
  #held = -1;
  #holdTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly r: AnswerRequest,
    private readonly resolve: (answer: Answer) => void,
    private readonly reject: (err: Error) => void,
  ) {}

  /** Resolves with a stream (backpressure from here on) that starts with whatever was held. */
  #toStream(): boolean {
    clearTimeout(this.#holdTimer);
    const stream = new Readable({
      highWaterMark: 64 * 1024,
      read: () => this.#resumeParser?.(),
      destroy: (err, cb) => {
        if (!this.#ended) this.#abort?.(err ?? new undiciErrors.RequestAbortedError());
        cb(err);
      },
    });
    this.#stream = stream;
    let more = true;
    for (const c of this.#chunks ?? []) more = stream.push(c);
    this.#chunks = undefined;
    this.resolve({ statusCode: this.#statusCode, headers: this.#headers, body: stream });
    return more;
  }

  onConnect(abort: (err: Error) => void): void {
    this.#abort = abort;
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    if (status < 200) return true;
    this.#statusCode = status;
    const headers = (this.#headers = parseRawHeaders(raw));
    const declared = headers['content-length'];
    const size = typeof declared === 'string' ? Number(declared) : NaN;
    if (Number.isInteger(size) && size >= 0 && size <= this.r.bufferUpTo) {
      this.#chunks = [];
      return true;
    }
    this.#resumeParser = resume;
    const holdMs = this.r.holdUnknownMs ?? 0;
    if (declared === undefined && holdMs > 0) {
      this.#chunks = [];
      this.#held = 0;
      this.#holdTimer = setTimeout(() => this.#toStream(), holdMs);
      return true;
    }
    this.#toStream();
    return true;
  }

  onData(chunk: Buffer): boolean {
    const chunks = this.#chunks;
    if (chunks) {
      chunks.push(chunk);
      if (this.#held >= 0 && (this.#held += chunk.length) > this.r.bufferUpTo) return this.#toStream();
      return true;
    }
    return this.#stream!.push(chunk);
  }

  onComplete(): void {
    this.#ended = true;
    clearTimeout(this.#holdTimer);
    const chunks = this.#chunks;
    if (chunks) this.resolve({ statusCode: this.#statusCode, headers: this.#headers, body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks) });
    else this.#stream?.push(null);
  }

  onError(err: Error): void {
    this.#ended = true;
    clearTimeout(this.#holdTimer);
    if (this.#stream) this.#stream.destroy(err);
    else if (this.#chunks) this.resolve({ statusCode: this.#statusCode, headers: this.#headers, body: replayBody(this.#chunks, err) });
    else this.reject(err);
  }
}

function requestAnswer(dispatcher: Dispatcher, r: AnswerRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    dispatcher.dispatch({ origin: r.origin, path: r.path, method: r.method, headers: r.headers, body: r.body }, new AnswerHandler(r, resolve, reject));
  });
}

export async function createEgress(options: EgressOptions = {}): Promise<Egress> {
  const ca = await loadCa(options.caFiles ?? []);
  const tls = { ...(ca ? { ca } : {}), ...(options.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}) };
  const agentOptions = {
    connect: { ...tls, timeout: options.connectTimeoutMs ?? 10_000 },
    headersTimeout: options.headersTimeoutMs ?? 0,
    bodyTimeout: options.bodyTimeoutMs ?? 0,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 60_000,
  };
  // The same lookups as undici's EnvHttpProxyAgent. With no proxy at all it sends every request
  // to a plain Agent, after a `new URL(origin)` per request to decide so (~1 % of the client's
  // CPU, issue 23): use that Agent directly then.
  const proxied = Boolean(options.httpProxy ?? process.env.http_proxy ?? process.env.HTTP_PROXY) || Boolean(options.httpsProxy ?? process.env.https_proxy ?? process.env.HTTPS_PROXY);
  const dispatcher: Dispatcher = !proxied
    ? new Agent(agentOptions)
    : new EnvHttpProxyAgent({
        ...agentOptions,
        httpProxy: options.httpProxy,
        httpsProxy: options.httpsProxy,
        // Read once: left undefined, undici reads process.env (slow, a native lookup) on every request.
        noProxy: options.noProxy ?? process.env.no_proxy ?? process.env.NO_PROXY ?? '',
        requestTls: tls,
        proxyTls: tls,
        // Plain-HTTP targets go as absolute-URI requests, as curl does: many corporate proxies
        // only allow CONNECT to port 443.
        proxyTunnel: false,
      });
  return {
    dispatcher,
    request: (url, opts = {}) => requestUrl(dispatcher, url, opts),
    requestBuffered: (r) => requestBuffered(dispatcher, r),
    requestAnswer: (r) => requestAnswer(dispatcher, r),
    close: () => dispatcher.close(),
  };
}
