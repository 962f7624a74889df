import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface BenchOrigin {
  url: string;
  /** Requests per first path segment (HA scenario: each client has its own prefix). */
  served: Map<string, number>;
  close(): Promise<void>;
}

const SMALL = Buffer.from(JSON.stringify({ ok: true, data: 'x'.repeat(72) })); // ~100 bytes
const CHUNK = Buffer.alloc(1024 * 1024, 0x61);

/**
 * The benchmark's origin: /small answers ~100 bytes, /stream/<n> streams n bytes with
 * backpressure, POST /upload drains the body and answers small.
 */
export async function startBenchOrigin(): Promise<BenchOrigin> {
  const served = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    const prefix = url.split('/')[1] ?? '';
    served.set(prefix, (served.get(prefix) ?? 0) + 1);
    if (url.startsWith('/stream/')) {
      const total = Number(url.split('/')[2]) || 0;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          const n = Math.min(CHUNK.length, total - sent);
          sent += n;
          if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(SMALL.length) });
      res.end(SMALL);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    served,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
