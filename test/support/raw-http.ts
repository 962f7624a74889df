// Raw HTTP/1.1 over node:net for hostile-input tests: HTTP clients normalize paths and refuse to
// send malformed framing (smuggling, oversized heads, trickled headers), so these write bytes.
import { connect, type Socket } from 'node:net';

export interface RawAnswer {
  /** Status of the first answer, 0 when none came. */
  status: number;
  /** Headers of the first answer (lower-case names). */
  headers: Record<string, string>;
  body: string;
  /** Everything received (all answers, when several came on the connection). */
  raw: string;
  /** The server closed (or reset) the connection. */
  closed: boolean;
  /** Socket error code, if any (EPIPE/ECONNRESET once the server stopped reading). */
  error?: string;
  /** Bytes this side wrote. */
  written: number;
}

/** Parses the first HTTP answer in `raw` (header block + content-length body). */
export function parseFirstAnswer(raw: string): Pick<RawAnswer, 'status' | 'headers' | 'body'> & { complete: boolean } {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, headers: {}, body: '', complete: false };
  const lines = raw.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  const body = raw.slice(end + 4, end + 4 + length);
  return { status, headers, body, complete: Buffer.byteLength(body) >= length };
}

export interface RawOptions {
  /** Give up (and destroy the socket) after this long; the answer so far is returned. */
  timeoutMs?: number;
  /** Resolve once the first answer is complete instead of waiting for the server to close. */
  untilAnswer?: boolean;
}

/**
 * Opens a connection to 127.0.0.1:`port`, lets `write` send whatever it wants (it may keep
 * writing until the socket closes), and resolves with what came back.
 */
export function rawExchange(port: number, write: string | Buffer | ((socket: Socket, count: (n: number) => void) => void | Promise<void>), options: RawOptions = {}): Promise<RawAnswer> {
  const { timeoutMs = 15_000, untilAnswer = false } = options;
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let raw = '';
    let written = 0;
    let error: string | undefined;
    let closed = false;
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const first = parseFirstAnswer(raw);
      resolve({ status: first.status, headers: first.headers, body: first.body, raw, closed, error, written });
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on('data', (d: Buffer) => {
      raw += d.toString('latin1');
      if (untilAnswer && parseFirstAnswer(raw).complete) finish();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error ??= err.code ?? err.message;
    });
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.on('connect', () => {
      const count = (n: number) => (written += n);
      if (typeof write === 'string' || Buffer.isBuffer(write)) {
        count(Buffer.byteLength(write));
        socket.write(write);
        return;
      }
      void Promise.resolve(write(socket, count)).catch((err: Error) => (error ??= err.message));
    });
  });
}

/** Writes `chunk` repeatedly (respecting backpressure) until the socket closes or `max` bytes went out. */
export async function writeUntilClosed(socket: Socket, chunk: Buffer, max: number, count: (n: number) => void): Promise<void> {
  let sent = 0;
  while (sent < max && !socket.destroyed && socket.writable) {
    const ok = socket.write(chunk);
    sent += chunk.length;
    count(chunk.length);
    if (!ok) {
      await new Promise<void>((resolve) => {
        const done = () => {
          socket.off('drain', done).off('close', done);
          resolve();
        };
        socket.on('drain', done).on('close', done);
      });
    }
  }
}

/**
 * Slowloris: `count` connections that each send a request line and then one header byte every
 * `everyMs`, never finishing the head. Resolves with each connection's answer once the server
 * has closed them all (or `timeoutMs` passed).
 */
export function slowloris(port: number, count: number, requestLine: string, everyMs: number, timeoutMs: number): Promise<RawAnswer[]> {
  return Promise.all(
    Array.from({ length: count }, () =>
      rawExchange(
        port,
        async (socket, written) => {
          socket.write(`${requestLine}\r\nhost: 127.0.0.1\r\n`);
          written(requestLine.length);
          const trickle = 'x-slow: ' + 'a'.repeat(100_000);
          for (let i = 0; i < trickle.length && !socket.destroyed && socket.writable; i++) {
            socket.write(trickle[i]!);
            written(1);
            await new Promise((r) => setTimeout(r, everyMs));
          }
        },
        { timeoutMs },
      ),
    ),
  );
}
