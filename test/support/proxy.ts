import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect } from 'node:net';
import { listen, closeServer } from '../../src/http/server-helpers.js';

export interface TestProxy {
  url: string;
  /** What went through: `CONNECT host:port` or `GET http://...`. */
  seen: string[];
  close(): Promise<void>;
}

/** A minimal forward proxy (absolute-URI HTTP and CONNECT tunnels), like a corporate proxy. */
export async function startProxy(): Promise<TestProxy> {
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const target = new URL(req.url!);
    const upstream = httpRequest({ host: target.hostname, port: target.port, path: target.pathname + target.search, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode!, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  server.on('connect', (req, socket, head) => {
    seen.push(`CONNECT ${req.url}`);
    const [host, port] = req.url!.split(':');
    const upstream = connect(Number(port), host!, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  const port = await listen(server, 0, '127.0.0.1');
  return { url: `http://127.0.0.1:${port}`, seen, close: () => closeServer(server) };
}
