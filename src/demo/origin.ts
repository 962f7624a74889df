import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DemoOrigin {
  readonly port: number;
  /** Requests served per path prefix (`/c1`, `/c2`...): each demo client has its own prefix. */
  readonly served: Map<string, number>;
  close(): Promise<void>;
}

/** The "internal system" of the demo: answers small JSON and counts who asked. */
export async function startDemoOrigin(): Promise<DemoOrigin> {
  const served = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const prefix = (req.url ?? '/').split('/')[1] ?? '';
    served.set(prefix, (served.get(prefix) ?? 0) + 1);
    const body = JSON.stringify({ ok: true, servedBy: prefix, at: Date.now() });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    served,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
