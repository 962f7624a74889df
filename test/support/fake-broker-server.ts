import { createServer, type IncomingMessage, type Server, type RequestListener } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { WebSocketServer, WebSocket } from 'ws';
import { listen, closeServer } from '../../src/http/server-helpers.js';
import { decodeTunnelMessage, encodeEvent, readResponseHead, type ResponseHead, type TunnelMessage } from '../../src/protocol/index.js';

export interface FakeConnection {
  ws: WebSocket;
  url: URL;
  headers: IncomingMessage['headers'];
  role: string;
  identify?: { token: string; metadata: Record<string, unknown> };
  messages: TunnelMessage[];
  raw: string[];
  /** Engine.io pongs (`3`) received. */
  enginePongs: number;
  closed: boolean;
}

export interface ResponseData {
  url: string;
  headers: IncomingMessage['headers'];
  head: ResponseHead;
  body: Buffer;
}

/**
 * A scripted broker server for client tests: speaks engine.io v4 over a direct websocket and
 * Primus EJSON, records everything the client sends, and takes POST /response-data.
 */
export class FakeBrokerServer {
  readonly connections: FakeConnection[] = [];
  readonly responses = new Map<string, ResponseData>();
  capabilities: string[] = ['receive-post-streams'];
  /** Send the server identify on connect (switch off to simulate a server that never identifies). */
  sendIdentify = true;
  /** engine.io timings announced in the open packet (this fake never pings by itself). */
  engineTimings = { pingInterval: 25000, pingTimeout: 20000 };
  /** Answer `primus::ping` with a pong (switch off to simulate a dead link). */
  answerPrimusPings = true;
  #server: Server;
  #wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 * 1024 });
  #nextId = 1000;
  #acks = new Map<number, (args: unknown[]) => void>();
  port = 0;
  readonly #secure: boolean;

  constructor(tls?: { cert: string; key: string }) {
    this.#secure = Boolean(tls);
    const handler: RequestListener = async (req, res) => {
      if (req.method === 'POST' && req.url?.startsWith('/response-data/')) {
        try {
          const head = await readResponseHead(req);
          const chunks: Buffer[] = [];
          for await (const c of req) chunks.push(c as Buffer);
          const streamingID = decodeURIComponent(new URL(req.url, 'http://x').pathname.split('/')[3] ?? '');
          this.responses.set(streamingID, { url: req.url, headers: req.headers, head, body: Buffer.concat(chunks) });
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{}');
        } catch (err) {
          res.writeHead(400);
          res.end(String(err));
        }
        return;
      }
      if (req.url === '/healthcheck') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true,"version":"fake"}');
        return;
      }
      res.writeHead(404);
      res.end();
    };
    this.#server = tls ? (createHttpsServer(tls, handler) as unknown as Server) : createServer(handler);
    this.#server.on('upgrade', (req, socket, head) => {
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onConnection(ws, req));
    });
  }

  get url(): string {
    return `${this.#secure ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<this> {
    this.port = await listen(this.#server, port, '127.0.0.1');
    return this;
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.ws.terminate();
    this.#wss.close();
    this.#server.closeAllConnections?.();
    await closeServer(this.#server);
  }

  open(): FakeConnection[] {
    return this.connections.filter((c) => !c.closed && c.identify);
  }

  #onConnection(ws: WebSocket, req: IncomingMessage): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const conn: FakeConnection = { ws, url, headers: req.headers, role: url.searchParams.get('connection_role') ?? '', messages: [], raw: [], enginePongs: 0, closed: false };
    this.connections.push(conn);
    ws.on('close', () => (conn.closed = true));
    ws.on('message', (data) => {
      const text = data.toString();
      conn.raw.push(text);
      if (text === '3') {
        conn.enginePongs++;
        return;
      }
      if (!text.startsWith('4')) return;
      let msg: TunnelMessage;
      try {
        msg = decodeTunnelMessage(text.slice(1), 512 * 1024 * 1024);
      } catch {
        return;
      }
      conn.messages.push(msg);
      if (msg.kind === 'ping' && this.answerPrimusPings) ws.send(`4${JSON.stringify(`primus::pong::${msg.timestamp}`)}`);
      if (msg.kind === 'event' && msg.name === 'identify') conn.identify = msg.args[0] as FakeConnection['identify'];
      if (msg.kind === 'ack') this.#acks.get(msg.id)?.(msg.args);
    });
    ws.send(`0${JSON.stringify({ sid: `sid-${this.connections.length}`, upgrades: [], ...this.engineTimings, maxPayload: 22020096 })}`);
    if (this.sendIdentify) ws.send(`4${encodeEvent('identify', [{ capabilities: this.capabilities }])}`);
  }

  /** Sends a raw engine.io packet text. */
  sendRaw(conn: FakeConnection, text: string): void {
    conn.ws.send(text);
  }

  emit(conn: FakeConnection, name: string, ...args: unknown[]): void {
    conn.ws.send(`4${encodeEvent(name, args)}`);
  }

  /** Emits an event with an ack id and resolves with the ack's arguments. */
  call(conn: FakeConnection, name: string, args: unknown[], id = this.#nextId++): Promise<unknown[]> {
    return new Promise((resolve) => {
      this.#acks.set(id, resolve);
      conn.ws.send(`4${encodeEvent(name, args, id)}`);
    });
  }
}
