import { randomUUID } from 'node:crypto';
import type { Agent } from 'node:http';
import type { Logger } from '../observability/logger.js';
import {
  decodeEnginePacket,
  decodeTunnelMessage,
  encodeEnginePacket,
  encodeEvent,
  encodePing,
  encodePong,
  EmitterChannel,
  parseOpenData,
  ProtocolError,
  type Reply,
} from '../protocol/index.js';
import { backoffDelay, delay } from '../http/backoff.js';
import type { TunnelRole } from '../config/client.js';
import type { Egress } from '../http/egress.js';
import { createTransport, TunnelTlsError, type TransportKind, type TunnelTransport } from './transport.js';

export type TunnelState = 'connecting' | 'identified' | 'ready' | 'draining' | 'closed';

/** Where a tunnel connects: the broker server (or the pod the dispatcher chose) and its id. */
export interface Placement {
  serverUrl: string;
  serverId?: string | number;
  /**
   * Set when serverUrl is the server's direct URL from the dispatcher: the configured
   * BROKER_SERVER_URL, used when the direct URL cannot be reached from this network.
   */
  fallbackUrl?: string;
}

export interface TunnelOptions {
  role: TunnelRole;
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
  /** Resolves the placement before every attempt (waits for the dispatcher in HA mode). */
  placement(signal: AbortSignal): Promise<Placement>;
  /** The identify metadata, asked each time a tunnel identifies. */
  identifyMetadata(role: TunnelRole): Record<string, unknown>;
  /** Every emitter event after the handshake; `reply` is set when the event carries an ack id. */
  onEvent(tunnel: Tunnel, name: string, args: unknown[], reply: Reply | undefined): void;
  /**
   * The server is going away (drain close) or keeps refusing us: the placement may be stale.
   * Returns true when a new placement was asked for (the next attempt then follows quickly).
   */
  onServerGone?(tunnel: Tunnel, reason: string): boolean | void;
  onStateChange?(tunnel: Tunnel, state: TunnelState): void;
  /** engine.io transport: a direct websocket (default) or long-polling. */
  transport?: TransportKind;
  /** The egress stack (needed by the polling transport). */
  egress?: Egress;
  /** Consecutive failed attempts after which onServerGone fires (default 2). */
  failuresBeforeGone?: number;
}

/** The close code our broker server uses to send clients elsewhere while it drains. */
export const SERVER_DRAINING_CLOSE_CODE = 4001;

/** server_id is omitted when falsy, as the real client does (number 0 omitted, string "0" kept). */
export function placementQuery(placement: Placement, role: TunnelRole): string {
  const params = new URLSearchParams();
  if (placement.serverId) params.set('server_id', String(placement.serverId));
  params.set('connection_role', role);
  return params.toString();
}

/** The http(s) engine.io endpoint of a tunnel, with the contract's query (the transport adds EIO/transport). */
export function tunnelHttpUrl(placement: Placement, token: string, role: TunnelRole): string {
  const base = new URL(placement.serverUrl);
  base.pathname = `/primus/${encodeURIComponent(token)}/`;
  base.search = placementQuery(placement, role);
  return base.toString();
}

export function tunnelUrl(placement: Placement, token: string, role: TunnelRole): string {
  const base = new URL(placement.serverUrl);
  base.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  base.pathname = `/primus/${encodeURIComponent(token)}/`;
  base.search = `${placementQuery(placement, role)}&EIO=4&transport=websocket`;
  return base.toString();
}

interface AttemptResult {
  wasReady: boolean;
  code: number;
  reason: string;
  serverClose: boolean;
}

/**
 * One tunnel (primary or secondary): an engine.io v4 session over a direct websocket, Primus
 * EJSON framing, the emitter channel, both heartbeat layers, and reconnection forever with
 * jittered capped backoff. State: connecting → identified → ready → (draining) → closed.
 */
export class Tunnel {
  readonly role: TunnelRole;
  #state: TunnelState = 'closed';
  #ws: TunnelTransport | undefined;
  #channel: EmitterChannel | undefined;
  #stopped = false;
  #draining = false;
  readonly #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #placement: Placement | undefined;
  #allocation: Placement | undefined;
  capabilities: string[] = [];
  requestsHandled = 0;
  /** Relays in flight that answer by ack on this tunnel (it must stay open for them). */
  ackInflight = 0;
  connectedAt: number | undefined;

  constructor(private readonly opts: TunnelOptions) {
    this.role = opts.role;
  }

  get state(): TunnelState {
    return this.#state;
  }
  get isOpen(): boolean {
    return this.#state === 'ready' || this.#state === 'draining';
  }
  get isReady(): boolean {
    return this.#state === 'ready';
  }
  get placement(): Placement | undefined {
    return this.#placement;
  }
  /** The placement as allocated (placement may be its fallback-URL variant): what onServerGone calls stale. */
  get allocation(): Placement | undefined {
    return this.#allocation;
  }
  get channel(): EmitterChannel | undefined {
    return this.#channel;
  }
  /** The URL shown in /healthcheck (the real client's format). */
  get displayUrl(): string {
    const p = this.#placement;
    return p ? `${p.serverUrl}/?${placementQuery(p, this.role)}` : '';
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops taking new work on this tunnel: not chosen for webhooks, readiness drops. */
  drain(): void {
    this.#draining = true;
    if (this.#state === 'ready') this.#setState('draining');
  }

  /** Closes for good and resolves once the loop has ended. */
  async close(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    const ws = this.#ws;
    let force: NodeJS.Timeout | undefined;
    if (ws && ws.isOpen) {
      ws.close(1000, 'client closing');
      // ws waits up to 30 s for the peer's close frame; a stop should not.
      force = setTimeout(() => ws.terminate(), 2000);
    } else ws?.terminate();
    await this.#loop;
    clearTimeout(force);
    this.#setState('closed');
  }

  /** Sends one emitter event and resolves when it is written to the socket (backpressure for streams). */
  emitAndFlush(name: string, ...args: unknown[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = this.#ws;
      if (!ws || !ws.isOpen) return reject(new ProtocolError('CHANNEL_CLOSED', 'tunnel is not open'));
      ws.send(encodeEnginePacket('message', encodeEvent(name, args)), (err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * Sends a binary answer frame on the connection `channel` belongs to. Resolves false, with
   * nothing sent, when that connection is gone (the tunnel reconnected meanwhile) or cannot
   * carry binary messages (polling), or when the write failed: the caller posts the answer instead.
   */
  sendAnswer(frame: Buffer, channel: EmitterChannel): Promise<boolean> {
    const ws = this.#ws;
    if (!ws || !ws.isOpen || !ws.sendBinary || channel !== this.#channel) return Promise.resolve(false);
    return new Promise((resolve) => ws.sendBinary!(frame, (err) => resolve(err === undefined || err === null)));
  }

  #setState(state: TunnelState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.opts.onStateChange?.(this, state);
  }

  async #run(): Promise<void> {
    const log = this.opts.logger;
    // Failed attempts since the last ready tunnel or new placement, and new placements asked
    // for since the last ready tunnel: the backoff grows with both, so a dispatcher that keeps
    // naming a dead server (it has not noticed yet) is asked again sooner at first, then slower.
    let failures = 0;
    let cycles = 0;
    const goneAfter = Math.max(1, this.opts.failuresBeforeGone ?? 2);
    // The placement whose direct URL failed: later attempts for it go to its fallback URL.
    let directFailed: Placement | undefined;
    // Direct URLs that have carried a tunnel: when one fails later (even in a new allocation
    // naming the same server) the server is gone — killed, restarting — not out of this
    // network's reach, so no switch to the fallback.
    const directWorked = new Set<string>();
    while (!this.#stopped) {
      let allocated: Placement;
      try {
        allocated = await this.opts.placement(this.#abort.signal);
      } catch (err) {
        if (this.#stopped) break;
        log.warn({ role: this.role, err: (err as Error).message }, 'no placement for tunnel');
        await delay(backoffDelay(failures++), this.#abort.signal);
        continue;
      }
      if (this.#stopped) break;
      const placement: Placement =
        directFailed === allocated && allocated.fallbackUrl ? { serverUrl: allocated.fallbackUrl, serverId: allocated.serverId } : allocated;
      this.#placement = placement;
      this.#allocation = allocated;
      const result = await this.#attempt(placement);
      if (result.wasReady && placement === allocated && allocated.fallbackUrl) directWorked.add(allocated.serverUrl);
      if (!result.wasReady && placement === allocated && allocated.fallbackUrl && !result.serverClose && !directWorked.has(allocated.serverUrl)) {
        log.warn({ role: this.role, serverUrl: allocated.serverUrl, fallbackUrl: allocated.fallbackUrl, serverId: allocated.serverId }, 'the server URL from the dispatcher is not reachable from here; using BROKER_SERVER_URL with server_id');
        directFailed = allocated;
      }
      // A draining client does not come back: its work is finishing, not starting.
      if (this.#stopped || this.#draining) break;
      let wait: number;
      if (result.wasReady) {
        failures = 0;
        cycles = 0;
        wait = backoffDelay(0);
      } else {
        failures++;
        wait = backoffDelay(failures + cycles);
      }
      if (result.serverClose || result.code === SERVER_DRAINING_CLOSE_CODE) {
        log.info({ role: this.role, code: result.code, reason: result.reason }, 'broker server closed the tunnel deliberately; reconnecting elsewhere');
        this.opts.onServerGone?.(this, 'server-draining');
        wait = backoffDelay(0);
      } else if (!result.wasReady && failures % goneAfter === 0) {
        // A killed server is not coming back soon: after a couple of failures a new placement
        // (HA mode) is tried at once rather than after the grown backoff.
        if (this.opts.onServerGone?.(this, 'unreachable') === true) {
          cycles++;
          failures = 0;
          wait = backoffDelay(cycles - 1);
        }
      }
      log.info({ role: this.role, attempt: failures, delayMs: wait, code: result.code, reason: result.reason }, 'tunnel closed; reconnecting');
      await delay(wait, this.#abort.signal);
    }
    this.#setState('closed');
  }

  #attempt(placement: Placement): Promise<AttemptResult> {
    const o = this.opts;
    const log = o.logger;
    const url = tunnelHttpUrl(placement, o.token, this.role);
    const requestId = randomUUID();
    this.#setState('connecting');
    log.info({ url: `${placement.serverUrl}/?${placementQuery(placement, this.role)}`, serverId: placement.serverId, role: this.role, requestId }, 'broker client is connecting to broker server');
    return new Promise<AttemptResult>((resolve) => {
      let wasReady = false;
      let serverClose = false;
      let identified = false;
      let engineTimer: NodeJS.Timeout | undefined;
      let pingTimer: NodeJS.Timeout | undefined;
      let pongTimer: NodeJS.Timeout | undefined;
      const ws = createTransport(o.transport ?? 'websocket', {
        url,
        headers: {
          'x-snyk-broker-client-id': o.clientId,
          'x-snyk-broker-client-role': this.role,
          'x-broker-client-version': o.wireVersion,
          'snyk-request-id': requestId,
        },
        connectTimeoutMs: o.connectTimeoutMs,
        // Frames above our decode cap are dropped by the decoder (tunnel stays up); ws itself
        // only closes on frames far beyond it.
        maxPayload: Math.max(o.maxFrameBytes * 4, 64 * 1024 * 1024),
        agent: o.agent?.(),
        tls: o.tls?.(),
        egress: o.egress,
      });
      this.#ws = ws;
      const send = (text: string) => {
        if (!ws.isOpen) throw new ProtocolError('CHANNEL_CLOSED', 'tunnel is not open');
        ws.send(encodeEnginePacket('message', text));
      };
      const channel = new EmitterChannel(send);
      this.#channel = channel;
      const connectTimer = setTimeout(() => {
        log.warn({ role: this.role, timeoutMs: o.connectTimeoutMs }, 'tunnel connect timed out');
        ws.terminate();
      }, o.connectTimeoutMs);

      const armEngineWatchdog = (ms: number) => {
        clearTimeout(engineTimer);
        engineTimer = setTimeout(() => {
          log.warn({ role: this.role }, 'no engine.io ping from the server in time; reconnecting');
          ws.terminate();
        }, ms);
      };
      let engineWindow = 0;
      const schedulePing = () => {
        clearTimeout(pingTimer);
        pingTimer = setTimeout(() => {
          try {
            send(encodePing(Date.now()));
          } catch {
            return;
          }
          clearTimeout(pongTimer);
          pongTimer = setTimeout(() => {
            log.warn({ role: this.role, timeoutMs: o.pongTimeoutMs }, 'no heartbeat answer from the server in time; reconnecting');
            ws.terminate();
          }, o.pongTimeoutMs);
        }, o.pingIntervalMs);
      };

      const onTunnelMessage = (text: string) => {
        let msg;
        try {
          msg = decodeTunnelMessage(text, o.maxFrameBytes);
        } catch (err) {
          const code = (err as ProtocolError).code ?? 'BAD_FRAME';
          log.warn({ role: this.role, code, err: (err as Error).message, bytes: Buffer.byteLength(text) }, 'dropped a bad tunnel frame');
          return;
        }
        switch (msg.kind) {
          case 'pong':
            clearTimeout(pongTimer);
            schedulePing();
            return;
          case 'ping':
            send(encodePong(msg.timestamp));
            return;
          case 'server-close':
            serverClose = true;
            log.info({ role: this.role }, 'broker server announced it is closing this tunnel');
            return;
          case 'primus':
            log.debug({ role: this.role, text: msg.text.slice(0, 200) }, 'ignored a Primus message');
            return;
          case 'ack':
            if (!channel.acknowledge(msg)) log.warn({ role: this.role, id: msg.id }, 'ack for no pending call');
            return;
          case 'event':
            if (msg.name === 'identify' && !identified) {
              identified = true;
              clearTimeout(connectTimer);
              const info = msg.args[0] as { capabilities?: unknown } | undefined;
              this.capabilities = Array.isArray(info?.capabilities) ? info.capabilities.filter((c): c is string => typeof c === 'string') : [];
              this.#setState('identified');
              // Ready once the identify has left (long-polling: once its POST was taken), so
              // readiness never runs ahead of the server knowing this tunnel.
              ws.send(encodeEnginePacket('message', encodeEvent('identify', [{ token: o.token, metadata: o.identifyMetadata(this.role) }])), (err) => {
                if (err || this.#ws !== ws || !ws.isOpen) return;
                wasReady = true;
                this.connectedAt = Date.now();
                this.#setState(this.#draining ? 'draining' : 'ready');
                schedulePing();
                log.info({ role: this.role, serverUrl: placement.serverUrl, serverId: placement.serverId, capabilities: this.capabilities }, 'tunnel ready');
              });
              return;
            }
            if (!identified) {
              log.warn({ role: this.role, event: msg.name }, 'event before the server identified; dropped');
              if (msg.id !== undefined) channel.replier(msg.id)({ status: 503, errorType: 'CONNECTION_NOT_READY', body: JSON.stringify({ code: 'CONNECTION_NOT_READY', message: 'tunnel not identified yet' }) });
              return;
            }
            if (msg.name === 'notification') {
              const n = msg.args[0] as { level?: string; message?: string } | undefined;
              const level = n?.level === 'error' ? 'error' : n?.level === 'warning' ? 'warn' : 'info';
              log[level]({ role: this.role, notification: n?.message }, 'notification from the broker server');
              return;
            }
            o.onEvent(this, msg.name, msg.args, msg.id !== undefined ? channel.replier(msg.id) : undefined);
            return;
        }
      };

      ws.on('message', (text, isBinary) => {
        if (isBinary) {
          log.warn({ role: this.role }, 'dropped a binary tunnel frame');
          return;
        }
        let packet;
        try {
          packet = decodeEnginePacket(text);
        } catch (err) {
          log.warn({ role: this.role, code: (err as ProtocolError).code, err: (err as Error).message }, 'dropped a bad engine.io packet');
          return;
        }
        try {
          switch (packet.type) {
            case 'open': {
              const open = parseOpenData(packet.data);
              engineWindow = open.pingInterval + open.pingTimeout;
              armEngineWatchdog(engineWindow);
              return;
            }
            case 'ping':
              ws.send(encodeEnginePacket('pong', packet.data));
              if (engineWindow) armEngineWatchdog(engineWindow);
              return;
            case 'close':
              ws.close(1000, 'server closed the session');
              return;
            case 'message':
              onTunnelMessage(packet.data);
              return;
            default:
              return;
          }
        } catch (err) {
          log.warn({ role: this.role, code: (err as ProtocolError).code, err: (err as Error).message }, 'failed to handle a tunnel packet');
        }
      });
      ws.on('error', (err) => {
        // A refused certificate will not fix itself on retry: said loudly, with what to change.
        if (err instanceof TunnelTlsError) log.error({ role: this.role, code: err.tlsCode, err: err.message }, 'tunnel error');
        else log.warn({ role: this.role, err: err.message }, 'tunnel error');
      });
      ws.on('close', (code, reason) => {
        clearTimeout(connectTimer);
        clearTimeout(engineTimer);
        clearTimeout(pingTimer);
        clearTimeout(pongTimer);
        channel.close();
        if (this.#ws === ws) {
          this.#ws = undefined;
        }
        this.connectedAt = undefined;
        if (!this.#stopped) this.#setState('connecting');
        resolve({ wasReady, code, reason, serverClose });
      });
    });
  }
}
