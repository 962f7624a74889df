import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createHash } from 'node:crypto';
import { listen, closeServer } from '../../src/http/server-helpers.js';

export interface Origin {
  readonly url: string;
  readonly port: number;
  /** Requests seen, newest last (method, url, headers, body as text). */
  readonly seen: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string }>;
  /** Each /bytes answer by its URL: bytes written so far, and whether the origin waits for its reader (write returned false). */
  readonly streams: Map<string, { written: number; waiting: boolean }>;
  close(): Promise<void>;
}

/** Deterministic bytes: the same (seed, size) always gives the same stream, so a checksum can be predicted. */
export function patternChunk(offset: number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) buf[i] = ((offset + i) * 31 + ((offset + i) >>> 8)) & 0xff;
  return buf;
}

export function patternSha256(total: number, chunk = 64 * 1024): string {
  const hash = createHash('sha256');
  for (let off = 0; off < total; off += chunk) hash.update(patternChunk(off, Math.min(chunk, total - off)));
  return hash.digest('hex');
}

/**
 * A local origin for tests:
 *  /echo/...        JSON {method,url,headers,body}
 *  /bytes/<n>       n deterministic bytes, streamed with backpressure (x-sha256 header)
 *  /status/<code>   that status with a small JSON body
 *  /slow/<ms>       answers after ms
 *  /webhook-sink/*  records and answers {received:true}
 */
export async function startOrigin(port = 0): Promise<Origin> {
  const seen: Origin['seen'] = [];
  const streams: Origin['streams'] = new Map();
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
    const url = new URL(req.url!, 'http://origin');
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] === 'bytes') {
      const total = Number(parts[1]);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total), 'x-sha256': patternSha256(total) });
      let off = 0;
      const progress = { written: 0, waiting: false };
      streams.set(req.url!, progress);
      const pump = () => {
        progress.waiting = false;
        while (off < total) {
          const n = Math.min(64 * 1024, total - off);
          const ok = res.write(patternChunk(off, n));
          off += n;
          progress.written = off;
          if (!ok) {
            progress.waiting = true;
            return void res.once('drain', pump);
          }
        }
        res.end();
      };
      pump();
      return;
    }
    if (parts[0] === 'status') {
      const code = Number(parts[1]) || 500;
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: code }));
      return;
    }
    if (parts[0] === 'slow') {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ slow: true }));
      }, Number(parts[1]) || 1000);
      return;
    }
    if (parts[0] === 'webhook-sink') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ received: true }));
      return;
    }
    const text = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body });
    res.writeHead(200, { 'content-type': 'application/json', 'x-origin': 'echo' });
    res.end(text);
  });
  server.keepAliveTimeout = 5_000;
  const bound = await listen(server, port, '127.0.0.1');
  return { url: `http://127.0.0.1:${bound}`, port: bound, seen, streams, close: () => closeServer(server) };
}
