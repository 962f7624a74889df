import { randomUUID } from 'node:crypto';
import type { Agent } from 'node:http';
import type { TunnelRole } from '../config/client.js';
import type { Egress } from '../http/egress.js';
import type { Logger } from '../observability/logger.js';
import type { PlatformAuth } from './platform-auth.js';
import { decodeEnginePacket, decodeTunnelMessage, encodeEnginePacket, encodeEvent, encodePong, EmitterChannel, parseOpenData, ProtocolError, type Reply } from '../protocol/index.js';
import { createTransport, TunnelTlsError, type TransportKind, type TunnelTransport } from './transport.js';
import { TunnelHeartbeat } from './tunnel-heartbeat.js';
import { placementQuery, tunnelHttpUrl, type Placement } from './tunnel-urls.js';

export type TunnelState = 'connecting' | 'identified' | 'ready' | 'draining' | 'closed';

/** What one connection of a tunnel needs to know (a part of TunnelOptions). */
export interface SessionOptions {
  token: string;
  clientId: string;
  wireVersion: string;
  pingIntervalMs: number;
  pongTimeoutMs: number;
  connectTimeoutMs: number;
  maxFrameBytes: number;
  logger: Logger;
  /** The proxy agent for the websocket, if a proxy applies (asked per attempt). */
  agent?: () => Agent | undefined;
  /** Extra TLS settings for wss (CA_CERT, NODE_TLS_REJECT_UNAUTHORIZED=0). */
  tls?: () => { ca?: string[]; rejectUnauthorized?: boolean } | undefined;
  /** The identify metadata, asked each time a tunnel identifies. */
  identifyMetadata(role: TunnelRole): Record<string, unknown>;
  /** engine.io transport: a direct websocket (default) or long-polling. */
  transport?: TransportKind;
  /** The egress stack (needed by the polling transport). */
  egress?: Egress;
  /** Universal Broker: the handshake carries this OAuth bearer (asked before every attempt). */
  auth?: PlatformAuth;
}

/** The tunnel a session runs for: its state, and what it learns from the connection. */
export interface SessionHost {
  readonly role: TunnelRole;
  setState(state: TunnelState): void;
  /** This connection's transport and channel are the tunnel's from now on. */
  attach(ws: TunnelTransport, channel: EmitterChannel): void;
  /** Whether `ws` is still the tunnel's connection (a stop may have let go of it). */
  holds(ws: TunnelTransport): boolean;
  /** The connection closed: the tunnel lets go of it (if it still holds it). */
  detach(ws: TunnelTransport): void;
  identified(capabilities: string[]): void;
  ready(): void;
  /** An emitter event after the handshake; `reply` is set when it carries an ack id. */
  event(name: string, args: unknown[], reply: Reply | undefined): void;
}

/** How a connection ended: whether it was ready, its close code and reason, and whether the server announced the close. */
export interface SessionEnd {
  wasReady: boolean;
  code: number;
  reason: string;
  serverClose: boolean;
  /** The HTTP status the server refused the handshake with, if it did. */
  refusedStatus?: number;
}

/**
 * One connection of a tunnel, from connect to close: the engine.io session over its transport,
 * Primus framing, the identify handshake, both heartbeats, and events handed to the tunnel.
 */
class TunnelSession {
  wasReady = false;
  serverClose = false;
  refusedStatus: number | undefined;
  #identified = false;
  readonly ws: TunnelTransport;
  readonly channel: EmitterChannel;
  readonly #heartbeat: TunnelHeartbeat;
  readonly #connectTimer: NodeJS.Timeout;

  constructor(
    private readonly o: SessionOptions,
    private readonly host: SessionHost,
    private readonly placement: Placement,
    requestId: string,
    authorization: string | undefined,
  ) {
    const role = host.role;
    const ws = createTransport(o.transport ?? 'websocket', {
      url: tunnelHttpUrl(placement, o.token, role),
      headers: {
        'x-snyk-broker-client-id': o.clientId,
        'x-snyk-broker-client-role': role,
        'x-broker-client-version': o.wireVersion,
        'snyk-request-id': requestId,
        ...(authorization ? { authorization } : {}),
      },
      connectTimeoutMs: o.connectTimeoutMs,
      // Frames above our decode cap are dropped by the decoder (tunnel stays up); ws itself
      // only closes on frames far beyond it.
      maxPayload: Math.max(o.maxFrameBytes * 4, 64 * 1024 * 1024),
      agent: o.agent?.(),
      tls: o.tls?.(),
      egress: o.egress,
    });
    this.ws = ws;
    this.channel = new EmitterChannel(this.send);
    host.attach(ws, this.channel);
    this.#heartbeat = new TunnelHeartbeat({ role, pingIntervalMs: o.pingIntervalMs, pongTimeoutMs: o.pongTimeoutMs, logger: o.logger }, this.send, () => ws.terminate());
    this.#connectTimer = setTimeout(() => {
      o.logger.warn({ role, timeoutMs: o.connectTimeoutMs }, 'tunnel connect timed out');
      ws.terminate();
    }, o.connectTimeoutMs);
  }

  readonly send = (text: string): void => {
    if (!this.ws.isOpen) throw new ProtocolError('CHANNEL_CLOSED', 'tunnel is not open');
    this.ws.send(encodeEnginePacket('message', text));
  };

  /** Resolves when the connection closed, with how it ended. */
  run(): Promise<SessionEnd> {
    const { ws, o } = this;
    const role = this.host.role;
    return new Promise<SessionEnd>((resolve) => {
      ws.on('message', (text, isBinary) => this.#onPacket(text, isBinary));
      ws.on('refused', (status: number) => {
        this.refusedStatus = status;
      });
      ws.on('error', (err) => {
        // A refused certificate will not fix itself on retry: said loudly, with what to change.
        if (err instanceof TunnelTlsError) o.logger.error({ role, code: err.tlsCode, err: err.message }, 'tunnel error');
        else o.logger.warn({ role, err: err.message }, 'tunnel error');
      });
      ws.on('close', (code, reason) => {
        clearTimeout(this.#connectTimer);
        this.#heartbeat.stop();
        this.channel.close();
        this.host.detach(ws);
        resolve({ wasReady: this.wasReady, code, reason, serverClose: this.serverClose, refusedStatus: this.refusedStatus });
      });
    });
  }

  #onPacket(text: string, isBinary: boolean): void {
    const log = this.o.logger;
    const role = this.host.role;
    if (isBinary) {
      log.warn({ role }, 'dropped a binary tunnel frame');
      return;
    }
    let packet;
    try {
      packet = decodeEnginePacket(text);
    } catch (err) {
      log.warn({ role, code: (err as ProtocolError).code, err: (err as Error).message }, 'dropped a bad engine.io packet');
      return;
    }
    try {
      switch (packet.type) {
        case 'open': {
          const open = parseOpenData(packet.data);
          this.#heartbeat.opened(open.pingInterval, open.pingTimeout);
          return;
        }
        case 'ping':
          this.ws.send(encodeEnginePacket('pong', packet.data));
          this.#heartbeat.enginePing();
          return;
        case 'close':
          this.ws.close(1000, 'server closed the session');
          return;
        case 'message':
          this.#onTunnelMessage(packet.data);
          return;
        default:
          return;
      }
    } catch (err) {
      log.warn({ role, code: (err as ProtocolError).code, err: (err as Error).message }, 'failed to handle a tunnel packet');
    }
  }

  #onTunnelMessage(text: string): void {
    const log = this.o.logger;
    const role = this.host.role;
    let msg;
    try {
      msg = decodeTunnelMessage(text, this.o.maxFrameBytes);
    } catch (err) {
      const code = (err as ProtocolError).code ?? 'BAD_FRAME';
      log.warn({ role, code, err: (err as Error).message, bytes: Buffer.byteLength(text) }, 'dropped a bad tunnel frame');
      return;
    }
    switch (msg.kind) {
      case 'pong':
        this.#heartbeat.pong();
        return;
      case 'ping':
        this.send(encodePong(msg.timestamp));
        return;
      case 'server-close':
        this.serverClose = true;
        log.info({ role }, 'broker server announced it is closing this tunnel');
        return;
      case 'primus':
        log.debug({ role, text: msg.text.slice(0, 200) }, 'ignored a Primus message');
        return;
      case 'ack':
        if (!this.channel.acknowledge(msg)) log.warn({ role, id: msg.id }, 'ack for no pending call');
        return;
      case 'event':
        this.#onEvent(msg.name, msg.args, msg.id);
        return;
    }
  }

  #onEvent(name: string, args: unknown[], id: number | undefined): void {
    const log = this.o.logger;
    const role = this.host.role;
    if (name === 'identify' && !this.#identified) return this.#identify(args[0] as { capabilities?: unknown } | undefined);
    if (!this.#identified) {
      log.warn({ role, event: name }, 'event before the server identified; dropped');
      if (id !== undefined) this.channel.replier(id)({ status: 503, errorType: 'CONNECTION_NOT_READY', body: JSON.stringify({ code: 'CONNECTION_NOT_READY', message: 'tunnel not identified yet' }) });
      return;
    }
    if (name === 'notification') {
      const n = args[0] as { level?: string; message?: string } | undefined;
      const level = n?.level === 'error' ? 'error' : n?.level === 'warning' ? 'warn' : 'info';
      log[level]({ role, notification: n?.message }, 'notification from the broker server');
      return;
    }
    this.host.event(name, args, id !== undefined ? this.channel.replier(id) : undefined);
  }

  /** The server identified first: we answer with ours, and the tunnel is ready once it has left. */
  #identify(info: { capabilities?: unknown } | undefined): void {
    const { ws, o, host, placement } = this;
    this.#identified = true;
    clearTimeout(this.#connectTimer);
    const capabilities = Array.isArray(info?.capabilities) ? info.capabilities.filter((c): c is string => typeof c === 'string') : [];
    host.identified(capabilities);
    // Ready once the identify has left (long-polling: once its POST was taken), so
    // readiness never runs ahead of the server knowing this tunnel.
    ws.send(encodeEnginePacket('message', encodeEvent('identify', [{ token: o.token, metadata: o.identifyMetadata(host.role) }])), (err) => {
      if (err || !host.holds(ws) || !ws.isOpen) return;
      this.wasReady = true;
      host.ready();
      this.#heartbeat.schedulePing();
      o.logger.info({ role: host.role, serverUrl: placement.serverUrl, serverId: placement.serverId, capabilities }, 'tunnel ready');
    });
  }
}

/** Connects once to `placement` and runs the connection until it closes. */
export function runTunnelSession(o: SessionOptions, host: SessionHost, placement: Placement, authorization?: string): Promise<SessionEnd> {
  const requestId = randomUUID();
  host.setState('connecting');
  o.logger.info({ url: `${placement.serverUrl}/?${placementQuery(placement, host.role)}`, serverId: placement.serverId, role: host.role, requestId }, 'broker client is connecting to broker server');
  return new TunnelSession(o, host, placement, requestId, authorization).run();
}
