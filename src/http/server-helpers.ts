import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

/** Starts listening and resolves with the bound port (useful with port 0 in tests). */
export function listen(server: Server, port: number, host?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeIdleConnections?.();
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The header naming why a request failed. */
export const FAILURE_HEADER = 'x-broker-failure';

/**
 * A failure answer: its `x-broker-failure` reason and status. The reasons are the entries of
 * protocol/failures.ts; http/ imports nothing of ours, so callers pass those entries in.
 */
export interface FailureAnswer {
  readonly reason: string;
  readonly status: number;
}

/** An error answer with the broker's `x-broker-failure` reason header. */
export function sendFailure(res: ServerResponse, failure: FailureAnswer, body: unknown = { ok: false }, headers: Record<string, string> = {}): void {
  sendJson(res, failure.status, body, { ...headers, [FAILURE_HEADER]: failure.reason });
}

/**
 * A failure answered on a raw socket (an upgrade, or a request Node's parser refused), then the
 * connection is closed: no more is read from it. `body` is sent as JSON when given.
 */
export function answerRawFailure(socket: Duplex, failure: FailureAnswer | { status: number; reason?: undefined }, body?: unknown, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  const head = [
    `HTTP/1.1 ${failure.status} ${STATUS_CODES[failure.status] ?? 'Error'}`,
    'connection: close',
    ...(body === undefined ? [] : ['content-type: application/json; charset=utf-8']),
    ...(failure.reason === undefined ? [] : [`${FAILURE_HEADER}: ${failure.reason}`]),
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    `content-length: ${Buffer.byteLength(text)}`,
  ];
  // Closed once the answer is flushed; a peer that does not read it is cut after a second.
  const cut = setTimeout(() => socket.destroy(), 1000);
  cut.unref();
  socket.end(`${head.join('\r\n')}\r\n\r\n${text}`, () => {
    clearTimeout(cut);
    socket.destroy();
  });
}

/** After refusing a body, the rest is read and discarded for at most this long / this much, then the connection is closed. */
const LINGER_MS = 2000;
const LINGER_BYTES = 16 * 1024 * 1024;
/** Between our FIN (reading stopped) and the reset: time for a busy caller to read the answer. */
const CLOSE_GRACE_MS = 1000;

/**
 * Answers a request whose body is not wanted (413) without reading it all. A client still
 * sending would get a connection reset instead of the answer if we closed at once (unread
 * input makes the kernel send RST, which discards what the client has not read yet), so the
 * rest is discarded unbuffered for at most LINGER_MS / LINGER_BYTES (a "lingering close"),
 * then reading stops, FIN follows the answer and the connection is reset CLOSE_GRACE_MS later.
 * A body that ends sooner leaves the connection usable.
 */
export function refuseBody(req: IncomingMessage, res: ServerResponse, failure: FailureAnswer, body: unknown, headers: Record<string, string> = {}): void {
  let discarded = 0;
  let timer: NodeJS.Timeout | undefined;
  const stop = () => {
    clearTimeout(timer);
    req.off('data', count);
  };
  const cut = () => {
    stop();
    if (req.complete) return;
    // Not a reset yet: that would discard the answer if the caller has not read it. Stop reading
    // (the sender's window fills, so it cannot push more) and send FIN after the answer; the
    // reset comes a moment later.
    const socket = req.socket;
    req.pause();
    socket.pause();
    socket.end();
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  };
  const count = (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > LINGER_BYTES) cut();
  };
  req.on('data', count).once('end', stop);
  res.once('finish', () => {
    if (req.complete) return stop();
    timer = setTimeout(cut, LINGER_MS);
    timer.unref();
  });
  sendFailure(res, failure, body, headers);
}

export class BodyTooLargeError extends Error {
  readonly code = 'BODY_TOO_LARGE';
  constructor(limit: number) {
    super(`request body exceeds ${limit} bytes`);
  }
}

/**
 * Reads a whole request body up to `limit` bytes (for the few places that must inspect it).
 * Over the limit it rejects with BodyTooLargeError at once (a declared Content-Length before
 * reading anything) and discards the rest unbuffered; answer with refuseBody, which bounds
 * that. (A for-await loop left early would destroy the socket, and with it the chance to
 * answer 413.)
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new BodyTooLargeError(limit));
  if (req.readableEnded) return Promise.resolve(Buffer.alloc(0));
  if (req.destroyed) return Promise.reject(new Error('the request was aborted before its body was complete'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (err: Error | undefined) => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      chunks.length = 0;
      settle(new BodyTooLargeError(limit));
      req.resume();
    };
    const onEnd = () => settle(undefined);
    const onError = (err: Error) => settle(err);
    const onClose = () => settle(new Error('the request was aborted before its body was complete'));
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

/** The failures a parser refusal is answered with (protocol/failures.ts PARSER_FAILURES). */
export interface ParserFailures {
  headersTooLarge: FailureAnswer;
  headersTimeout: FailureAnswer;
  malformed: FailureAnswer;
}

/**
 * A `clientError` listener that answers a request Node's parser refused with a status that
 * names the problem and an `x-broker-failure` reason (Node's own answer has none), then closes
 * the socket: nothing more is read from a peer that sent an oversized head, a malformed or
 * ambiguous request (smuggling attempts: Content-Length with Transfer-Encoding, two
 * Content-Lengths...) or that took too long to send its headers (slowloris).
 */
export function clientErrorHandler(failures: ParserFailures): (err: Error & { code?: string }, socket: Duplex) => void {
  return (err, socket) => {
    const pending = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || pending?.headersSent) {
      socket.destroy();
      return;
    }
    const [failure, message] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [failures.headersTooLarge, 'the request line and headers exceed the size limit']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [failures.headersTimeout, 'the request headers did not arrive in time']
          : [failures.malformed, `malformed HTTP request (${err.code ?? 'parse error'})`];
    answerRawFailure(socket, failure, { ok: false, message });
  };
}

/** Node's raw header list to a plain object, keeping repeated headers (set-cookie) as arrays. */
export function headersOf(req: IncomingMessage): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) out[k] = v;
  return out;
}

/** Hop-by-hop headers never forwarded across a relay (RFC 9110 §7.6.1). */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
