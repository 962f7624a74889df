import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const SMALL = Buffer.from(JSON.stringify({ ok: true, data: 'x'.repeat(72) })); // ~100 bytes
const CHUNK = Buffer.alloc(1024 * 1024, 0x61);

/**
 * The benchmark's origin: /small answers ~100 bytes, /stream/<n> streams n bytes with
 * backpressure, POST /upload drains the body and answers small. `served` counts requests per
 * first path segment (HA scenario: each client has its own prefix).
 */
function createBenchOriginServer(served: Map<string, number>): Server {
  const server = createServer((req, res) => {
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
  return server;
}

export type OriginMessage = { type: 'listening'; port: number } | { type: 'served'; counts: Record<string, number> };
export type OriginCommand = { type: 'served' } | { type: 'clear' };

// Run as a child process (see origin.ts): the origin gets its own event loop, so its work
// neither slows the load generator nor caps what a broker can move in scenario 3.
if (process.send && process.argv[2] === '--child') {
  const served = new Map<string, number>();
  const server = createBenchOriginServer(served);
  server.listen(0, '127.0.0.1', () => {
    process.send!({ type: 'listening', port: (server.address() as AddressInfo).port } satisfies OriginMessage);
  });
  process.on('message', (m: OriginCommand) => {
    if (m.type === 'clear') served.clear();
    // Both are answered with the counts (empty after a clear), so the parent can wait for either.
    process.send!({ type: 'served', counts: Object.fromEntries(served) } satisfies OriginMessage);
  });
  // The parent going away (even killed) ends the origin.
  process.on('disconnect', () => process.exit(0));
}
