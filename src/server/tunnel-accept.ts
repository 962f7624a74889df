import type { IncomingMessage } from 'node:http';
import { Server as EngineServer, type Socket as EngineSocket } from 'engine.io';
import type { Logger } from '../observability/logger.js';
import { maskToken } from '../protocol/index.js';
import { describeError } from '../http/errors.js';
import { FORWARDED_HEADER } from '../http/forward.js';
import type { Corkable } from '../http/write-batch.js';
import { Connection, type ConnectionHooks } from './connection.js';
import { engineTransport, netSocketOf } from './engine-transport.js';
import type { TunnelAuth } from './tunnel-auth.js';
import type { TunnelRegistry } from './tunnel-registry.js';
import { createSessionId } from './tunnel-routing.js';
import type { TunnelsConfig } from './tunnels.js';

export interface AcceptDeps {
  hooks: ConnectionHooks;
  registry: TunnelRegistry;
  /** Corks the socket at each engine.io flush (see http/write-batch.ts). */
  batchWrites: (socket: Corkable | undefined) => void;
  logger: Logger;
  maxFrameBytes: number;
  /** Mandatory-auth mode: the handshake gate whose validation each new tunnel must have passed. */
  tunnelAuth?: TunnelAuth;
}

/** `/primus/<token>/` (the trailing slash is engine.io-client's) → lowercase token. */
export function tunnelTokenOf(rawUrl: string | undefined): string | undefined {
  const path = (rawUrl ?? '').split('?', 1)[0];
  const m = /^\/primus\/([^/]+)\/?$/.exec(path);
  if (!m) return undefined;
  try {
    const token = decodeURIComponent(m[1]).toLowerCase();
    return token.length > 0 && token.length <= 256 ? token : undefined;
  } catch {
    return undefined;
  }
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** engine.io v4 (polling + upgrade, direct websocket, EIO3 tolerated), with no compression or cookie. */
export function createTunnelEngine(config: Pick<TunnelsConfig, 'pingIntervalMs' | 'pingTimeoutMs' | 'maxFrameBytes' | 'serverId'>): EngineServer {
  const engine = new EngineServer({
    pingInterval: config.pingIntervalMs,
    pingTimeout: config.pingTimeoutMs,
    maxHttpBufferSize: config.maxFrameBytes,
    allowEIO3: true,
    transports: ['polling', 'websocket'],
    perMessageDeflate: false,
    httpCompression: false,
    cookie: false,
  });
  if (config.serverId !== undefined) {
    const serverId = config.serverId;
    // Polling requests and the upgrade of a session may land on any server behind a Service: the sid says whose it is.
    (engine as unknown as { generateId: () => string }).generateId = () => createSessionId(serverId);
  }
  return engine;
}

/** A socket engine.io accepted under /primus/<token>/ becomes a Connection fed by its messages. */
export function acceptTunnel(socket: EngineSocket, deps: AcceptDeps): void {
  const { logger, maxFrameBytes } = deps;
  const req = socket.request;
  const token = tunnelTokenOf(req.url);
  const credentials = deps.tunnelAuth?.credentialsOf(req);
  if (!token || (deps.tunnelAuth && !credentials)) {
    // Mandatory auth and no validation on record: a handshake that reached engine.io past the gate (a bug), refused all the same.
    if (token) logger.error({ maskedToken: maskToken(token) }, 'tunnel handshake without validated credentials; closing');
    socket.close();
    return;
  }
  // engine.io queues packets while a write is out and flushes them together later: cork at
  // every flush (not at send) so each batch, queued or not, leaves in one writev.
  socket.on('flush', () => deps.batchWrites(netSocketOf(socket)));
  const conn = new Connection(engineTransport(socket), token, headerOf(req, 'x-snyk-broker-client-id'), headerOf(req, 'x-snyk-broker-client-role'), deps.hooks, maxFrameBytes);
  conn.credentials = credentials;
  deps.registry.add(conn, headerOf(req, FORWARDED_HEADER));
  socket.on('packet', () => conn.touch());
  socket.on('message', (data: unknown) => (typeof data === 'string' ? conn.receive(data) : conn.receiveBinary(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer))));
  socket.on('close', (reason: string, description?: unknown) => {
    const detail = description ? describeError(description) : '';
    if (/max payload size exceeded/i.test(detail)) {
      // ws refuses the frame from its header (nothing buffered) and closes with 1009.
      logger.warn({ connection: conn.id, maskedToken: maskToken(conn.pathToken), limitBytes: maxFrameBytes }, 'tunnel message larger than SOCKET_MAX_RESPONSE_LENGTH; tunnel closed');
    }
    conn.closed(detail ? `${reason}: ${detail}` : reason);
  });
  socket.on('error', (err: Error) => logger.debug({ connection: conn.id, error: err.message }, 'tunnel error'));
  conn.open();
}
