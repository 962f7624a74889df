import type { Readable } from 'node:stream';
import type { TunnelRole } from '../config/client.js';
import { delay } from '../http/backoff.js';
import { encodeEnginePacket, encodeEvent, ProtocolError, STREAM_CREDIT_EVENT, STREAM_DONE_EVENT, type EmitterChannel, type Reply } from '../protocol/index.js';
import { OutgoingAnswerStreams } from './answer-streams.js';
import type { TunnelTransport } from './transport.js';
import { ReconnectPolicy } from './tunnel-reconnect.js';
import { runTunnelSession, type SessionHost, type SessionOptions, type TunnelState } from './tunnel-session.js';
import { placementQuery, type Placement } from './tunnel-urls.js';

export { SERVER_DRAINING_CLOSE_CODE } from './tunnel-reconnect.js';
export type { TunnelState } from './tunnel-session.js';
export { placementQuery, tunnelHttpUrl, tunnelUrl, type Placement } from './tunnel-urls.js';

export interface TunnelOptions extends SessionOptions {
  role: TunnelRole;
  /** Resolves the placement before every attempt (waits for the dispatcher in HA mode). */
  placement(signal: AbortSignal): Promise<Placement>;
  /** Every emitter event after the handshake; `reply` is set when the event carries an ack id. */
  onEvent(tunnel: Tunnel, name: string, args: unknown[], reply: Reply | undefined): void;
  /**
   * The server is going away (drain close) or keeps refusing us: the placement may be stale.
   * Returns true when a new placement was asked for (the next attempt then follows quickly).
   */
  onServerGone?(tunnel: Tunnel, reason: string): boolean | void;
  onStateChange?(tunnel: Tunnel, state: TunnelState): void;
  /** Consecutive failed attempts after which onServerGone fires (default 2). */
  failuresBeforeGone?: number;
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
  /** The answers streaming over the current connection (our server only). */
  #streams: OutgoingAnswerStreams | undefined;
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
  readonly #host: SessionHost;

  constructor(private readonly opts: TunnelOptions) {
    this.role = opts.role;
    // What a connection (tunnel-session.ts) sees of this tunnel.
    this.#host = {
      role: this.role,
      setState: (state) => this.#setState(state),
      attach: (ws, channel) => {
        this.#ws = ws;
        this.#channel = channel;
        this.#streams = ws.frameSink ? new OutgoingAnswerStreams(ws.frameSink) : undefined;
      },
      holds: (ws) => this.#ws === ws,
      detach: (ws) => {
        if (this.#ws === ws) {
          this.#ws = undefined;
          this.#streams?.close(new ProtocolError('CHANNEL_CLOSED', 'tunnel closed while the answer streamed'));
          this.#streams = undefined;
        }
        this.connectedAt = undefined;
        if (!this.#stopped) this.#setState('connecting');
      },
      identified: (capabilities) => {
        this.capabilities = capabilities;
        this.#setState('identified');
      },
      ready: () => {
        this.connectedAt = Date.now();
        this.#setState(this.#draining ? 'draining' : 'ready');
      },
      event: (name, args, reply) => {
        // Flow control of answers streaming over this connection: for the streams, not the relay.
        if (name === STREAM_CREDIT_EVENT) return this.#streams?.onCredit(args);
        if (name === STREAM_DONE_EVENT) return this.#streams?.onDone(args);
        this.opts.onEvent(this, name, args, reply);
      },
    };
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

  /**
   * Streams a large answer (its POST /response-data bytes: head, then body) over the connection
   * `channel` belongs to, with the server's credit as flow control. Resolves false, with nothing
   * sent, when that connection is gone or cannot carry binary messages: the caller posts instead.
   */
  streamAnswer(channel: EmitterChannel, streamingID: string, head: Buffer, body: Readable, timeoutMs: number): Promise<number | false> {
    const streams = this.#streams;
    if (!streams || !this.#ws?.isOpen || channel !== this.#channel) return Promise.resolve(false);
    return streams.send(streamingID, head, body, timeoutMs);
  }

  #setState(state: TunnelState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.opts.onStateChange?.(this, state);
  }

  async #run(): Promise<void> {
    const log = this.opts.logger;
    const policy = new ReconnectPolicy(this.opts, {
      drained: () => void this.opts.onServerGone?.(this, 'server-draining'),
      unreachable: () => this.opts.onServerGone?.(this, 'unreachable'),
    });
    while (!this.#stopped) {
      let allocated: Placement;
      try {
        allocated = await this.opts.placement(this.#abort.signal);
      } catch (err) {
        if (this.#stopped) break;
        log.warn({ role: this.role, err: (err as Error).message }, 'no placement for tunnel');
        await delay(policy.noPlacement(), this.#abort.signal);
        continue;
      }
      if (this.#stopped) break;
      let authorization: string | undefined;
      try {
        authorization = await this.opts.auth?.authorization(this.#abort.signal);
      } catch (err) {
        if (this.#stopped) break;
        log.warn({ role: this.role, err: (err as Error).message }, 'no platform token for tunnel');
        await delay(policy.noPlacement(), this.#abort.signal);
        continue;
      }
      const placement = policy.target(allocated);
      this.#placement = placement;
      this.#allocation = allocated;
      const result = await runTunnelSession(this.opts, this.#host, placement, authorization);
      if (result.refusedStatus === 401) this.opts.auth?.invalidate();
      policy.ended(allocated, placement, result);
      // A draining client does not come back: its work is finishing, not starting.
      if (this.#stopped || this.#draining) break;
      await delay(policy.nextWait(result), this.#abort.signal);
    }
    this.#setState('closed');
  }
}
