import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { createHash, timingSafeEqual } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Duplex } from 'node:stream';
import type { Egress } from './egress.js';
import { answerRawFailure, HOP_BY_HOP, type FailureAnswer } from './server-helpers.js';
import { classifyEgressError } from './errors.js';

/** Marks a request that one broker server forwarded to a peer, so the peer never forwards it again. */
export const FORWARDED_HEADER = 'x-broker-forwarded-by';

/** Carries BROKER_INTERNAL_SECRET on server→dispatcher and server→peer calls; never relayed further. */
export const INTERNAL_SECRET_HEADER = 'x-broker-internal-secret';

/** Constant-time comparison of a received secret header with the configured one (hashes first, so lengths leak nothing). */
export function secretMatches(given: string | string[] | undefined, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function forwardableHeaders(req: IncomingMessage, extra: Record<string, string>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    // The caller's own secret header (if any) never travels on: `extra` carries ours.
    if (v === undefined || HOP_BY_HOP.has(k) || k === 'host' || k === INTERNAL_SECRET_HEADER || k === FORWARDED_HEADER) continue;
    out[k] = v;
  }
  return { ...out, ...extra };
}

/**
 * Relays an incoming HTTP request to `targetBase` + its url through the egress stack, streaming
 * both bodies with backpressure. Resolves when the answer has been fully written; rejects
 * (with a typed EgressError) only when nothing could be sent to the caller yet.
 */
export async function forwardHttpRequest(egress: Egress, req: IncomingMessage, res: ServerResponse, targetBase: string, extraHeaders: Record<string, string> = {}): Promise<void> {
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  let answer;
  try {
    answer = await egress.request(new URL(req.url ?? '/', targetBase), {
      method: method as 'GET',
      headers: forwardableHeaders(req, extraHeaders),
      body: hasBody ? req : undefined,
    });
  } catch (err) {
    throw classifyEgressError(err);
  }
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(answer.headers)) {
    if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
  }
  res.writeHead(answer.statusCode, headers);
  await pipeline(answer.body, res);
}

/**
 * Relays a websocket upgrade (or any HTTP/1.1 upgrade) to a peer as raw bytes: the original
 * request line and headers are replayed on a new connection and both sockets are piped.
 * Used to carry a tunnel that landed on the wrong server to the one it was allocated to.
 */
export function forwardUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  targetBase: string,
  extraHeaders: Record<string, string> = {},
  /**
   * The peer could not be reached (nothing was sent): `onConnectError` lets the caller answer the
   * socket, else it is answered with `unreachable` (protocol/failures.ts PEER_UNREACHABLE).
   */
  options: { connectTimeoutMs?: number; onConnect?: () => void } & ({ onConnectError: (err: Error) => void } | { unreachable: FailureAnswer }),
): Promise<void> {
  const target = new URL(targetBase);
  const port = Number(target.port) || (target.protocol === 'https:' || target.protocol === 'wss:' ? 443 : 80);
  const secure = target.protocol === 'https:' || target.protocol === 'wss:';
  return new Promise((resolve) => {
    const upstream: Socket = secure ? tlsConnect({ host: target.hostname, port, servername: target.hostname }) : netConnect({ host: target.hostname, port });
    let connectTimer: NodeJS.Timeout | undefined;
    if (options.connectTimeoutMs !== undefined) {
      connectTimer = setTimeout(() => upstream.destroy(Object.assign(new Error(`connect timeout after ${options.connectTimeoutMs} ms`), { code: 'ETIMEDOUT' })), options.connectTimeoutMs);
    }
    const fail = (err?: Error) => {
      clearTimeout(connectTimer);
      if ('onConnectError' in options) {
        upstream.destroy();
        options.onConnectError(err ?? new Error('peer unreachable'));
        resolve();
        return;
      }
      if (!socket.destroyed) answerRawFailure(socket, options.unreachable);
      upstream.destroy();
      resolve();
    };
    upstream.once('error', fail);
    upstream.once(secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(connectTimer);
      upstream.off('error', fail);
      options.onConnect?.();
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      const raw = req.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i].toLowerCase();
        if (name === 'host') lines.push(`Host: ${target.host}`);
        else if (name !== INTERNAL_SECRET_HEADER && name !== FORWARDED_HEADER) lines.push(`${raw[i]}: ${raw[i + 1]}`);
      }
      for (const [k, v] of Object.entries(extraHeaders)) lines.push(`${k}: ${v}`);
      upstream.write(lines.join('\r\n') + '\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      const done = () => {
        upstream.destroy();
        socket.destroy();
        resolve();
      };
      upstream.on('error', done);
      socket.on('error', done);
      upstream.on('close', done);
      socket.on('close', done);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
  });
}
