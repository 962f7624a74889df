import { createServer, type ServerResponse } from 'node:http';
import { Pool } from 'undici';
import { WebSocket, WebSocketServer, type RawData } from 'ws';

/**
 * The floor: the least a Node program can do on the snyk-compatible wire path, as a yardstick
 * for what the benchmark's targets ask of ours. It is not a broker. Its "server" takes a
 * platform request, sends it as one JSON websocket frame to its "client", which calls the
 * origin with undici and sends the answer back as its own HTTP POST, streamed; the server
 * streams that POST's body into the waiting platform response. Same dependencies as ours
 * (node:http, ws, undici), none of the work a broker must do: no engine.io or Primus framing,
 * no accept rules, no credentials, no logs, no metrics, no retries, no timeouts, one tunnel.
 *
 *   node floor-relay.js server   (PORT)
 *   node floor-relay.js client   (BROKER_SERVER_URL, ORIGIN_URL; FLOOR_ANSWERS=tunnel sends
 *                                 answers ≤ 64 KiB as a binary frame on the tunnel instead)
 *
 * Whatever this reaches on a machine bounds what any broker built on these parts can reach.
 */
interface FloorRequest {
  id: string;
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** The platform's request body, in the frame as the wire contract carries it. */
  body?: string;
}

function serve(port: number): void {
  const waiting = new Map<string, ServerResponse>();
  let tunnel: WebSocket | undefined;
  let next = 0;
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const take = (id: string) => {
    const res = waiting.get(id);
    waiting.delete(id);
    return res;
  };
  const http = createServer((req, res) => {
    const url = req.url ?? '/';
    if (req.method === 'POST' && url.startsWith('/response-data/')) {
      const target = take(url.slice('/response-data/'.length));
      if (!target) return void res.writeHead(404).end();
      const head = JSON.parse(String(req.headers['x-floor-head'])) as { status: number; headers: Record<string, string> };
      target.writeHead(head.status, head.headers);
      req.pipe(target);
      req.on('end', () => res.writeHead(200, { 'content-length': '0' }).end());
      return;
    }
    if (url === '/healthcheck') return void res.end('ok');
    const at = url.startsWith('/broker/') ? url.indexOf('/', '/broker/'.length) : -1;
    if (at < 0 || !tunnel) return void res.writeHead(503).end();
    const id = String(++next);
    waiting.set(id, res);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const message: FloorRequest = { id, method: req.method ?? 'GET', path: url.slice(at), headers: req.headers };
      if (chunks.length > 0) message.body = Buffer.concat(chunks).toString('utf8');
      tunnel?.send(JSON.stringify(message));
    });
  });
  http.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => {
    tunnel = ws;
    // Tunnel answers: [id length][id][head length, 2 bytes][head JSON][body].
    ws.on('message', (data: RawData, binary) => {
      if (!binary) return;
      const buf = data as Buffer;
      const idEnd = 1 + buf[0]!;
      const headEnd = idEnd + 2 + buf.readUInt16BE(idEnd);
      const target = take(buf.toString('latin1', 1, idEnd));
      const answer = JSON.parse(buf.toString('utf8', idEnd + 2, headEnd)) as { status: number; headers: Record<string, string> };
      target?.writeHead(answer.status, answer.headers).end(buf.subarray(headEnd));
    });
  }));
  http.keepAliveTimeout = 60_000;
  http.listen(port, '127.0.0.1');
}

function relayClient(serverUrl: string, originUrl: string, tunnelAnswers: boolean): void {
  const origin = new Pool(originUrl);
  const upstream = new Pool(serverUrl);
  let ws: WebSocket;
  async function relay(m: FloorRequest): Promise<void> {
    const headers = { ...m.headers };
    delete headers.host;
    delete headers.connection;
    delete headers['content-length'];
    delete headers['transfer-encoding'];
    const r = await origin.request({ method: m.method as 'GET', path: m.path, headers, body: m.body });
    const length = r.headers['content-length'];
    const answerHeaders: Record<string, string> = { 'content-type': String(r.headers['content-type'] ?? 'application/octet-stream') };
    if (length !== undefined) answerHeaders['content-length'] = String(length);
    const head = JSON.stringify({ status: r.statusCode, headers: answerHeaders });
    if (tunnelAnswers && length !== undefined && Number(length) <= 65536) {
      const body = Buffer.from(await r.body.arrayBuffer());
      const id = Buffer.from(m.id, 'latin1');
      const headBytes = Buffer.from(head);
      const prefix = Buffer.alloc(3 + id.length);
      prefix[0] = id.length;
      id.copy(prefix, 1);
      prefix.writeUInt16BE(headBytes.length, 1 + id.length);
      ws.send(Buffer.concat([prefix, headBytes, body]), { binary: true });
      return;
    }
    const posted = await upstream.request({
      method: 'POST',
      path: `/response-data/${m.id}`,
      headers: { 'x-floor-head': head, ...(length === undefined ? {} : { 'content-length': String(length) }) },
      body: r.body,
    });
    await posted.body.dump();
  }
  const connect = () => {
    ws = new WebSocket(`${serverUrl.replace(/^http/, 'ws')}/tunnel`, { perMessageDeflate: false });
    ws.on('message', (data: RawData) => void relay(JSON.parse(String(data)) as FloorRequest).catch(() => {}));
    ws.on('error', () => {});
    ws.on('close', () => setTimeout(connect, 100));
  };
  connect();
}

const role = process.argv[2];
if (role === 'server') serve(Number(process.env.PORT));
else if (role === 'client') relayClient(process.env.BROKER_SERVER_URL!, process.env.ORIGIN_URL!, process.env.FLOOR_ANSWERS === 'tunnel');
else {
  process.stderr.write('usage: floor-relay.js server|client\n');
  process.exit(2);
}
