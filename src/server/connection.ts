import type { TunnelCredentials } from './credential-validation.js';
import { EmitterChannel, encodeEvent, encodeEventWithStreamingId, encodePong, encodeServerClose, decodeTunnelMessage, ProtocolError, TUNNEL_ANSWERS_CAPABILITY, TUNNEL_STREAMS_CAPABILITY, type TunnelMessage } from '../protocol/index.js';

/**
 * connecting → identified → ready → draining → closed. Only `ready` connections take new
 * relays; `draining` ones finish what they hold (acks in flight) and then close.
 */
export type ConnectionState = 'connecting' | 'identified' | 'ready' | 'draining' | 'closed';

/** What a connection needs from its transport (an engine.io socket in production, a fake in tests). */
export interface TunnelTransport {
  /** Queues a text message; `onFlushed` runs once it was handed to the network. */
  send(text: string, onFlushed?: () => void): void;
  /** Closes the transport; a close code/reason is used when the transport is a websocket. */
  close(code?: number, reason?: string): void;
  /** Sends an extra heartbeat the client must answer (engine.io v4 ping); false when the transport cannot. */
  ping?(): boolean;
}

export interface ClientIdentity {
  /** Lowercase token from the identify payload (never logged). */
  token: string;
  clientId: string;
  /**
   * Which process among those sharing clientId (our client's metadata; else this tunnel's own
   * label), so the dispatcher tells an old pod's tunnels from its replacement's.
   */
  instance: string;
  role: string;
  version: string;
  capabilities: string[];
  /** The identify metadata minus `filters` (for status pages and logs). */
  metadata: Record<string, unknown>;
  filters?: unknown;
}

/** Something that waits on this connection and must hear when the tunnel goes away. */
export interface TunnelWaiter {
  onTunnelClosed(connection: Connection): void;
  /** The tunnel missed its probe (client hung, or its path silent): what waits may go elsewhere. */
  onTunnelUnresponsive?(connection: Connection): void;
}

export interface ConnectionHooks {
  onIdentify(connection: Connection, payload: unknown): void;
  onEvent(connection: Connection, name: string, args: unknown[], id: number | undefined): void;
  onPing(connection: Connection, timestamp: string): void;
  onBadFrame(connection: Connection, err: Error): void;
  /** A binary message from our client: an answer sent over the tunnel. */
  onAnswer(connection: Connection, frame: Buffer): void;
  onClosed(connection: Connection, reason: string): void;
}

export const OUR_CLIENT_CAPABILITY = 'ha-broker/1';
// Real clients ignore capabilities they do not know; only ours acts on the tunnel-answers one.
export const SERVER_CAPABILITIES = ['receive-post-streams', TUNNEL_ANSWERS_CAPABILITY, TUNNEL_STREAMS_CAPABILITY];

let sequence = 0;

/** One tunnel: frame decoding, the emitter channel, liveness, the relays it carries. */
export class Connection {
  readonly seq = ++sequence;
  state: ConnectionState = 'connecting';
  identity: ClientIdentity | undefined;
  /** Relays assigned to this connection and not finished (the selection weight). */
  inFlight = 0;
  /** Relays ever assigned (for status pages; metrics count separately). */
  served = 0;
  lastSeenAt: number;
  /** When the server last probed this busy, silent tunnel with an extra ping (0: never). */
  probedAt = 0;
  /** The probe whose silence was already logged. */
  loggedProbeAt = 0;
  #probeDeadline = 0;
  readonly openedAt: number;
  readonly channel: EmitterChannel;
  /** Set when the client said it is terminating: no more pings reported. */
  terminating = false;
  /** Webhooks from this client being forwarded (their acks need the tunnel). */
  pendingWebhooks = 0;
  /** Answers streaming in over this tunnel until their verdict is sent (they need the tunnel too). */
  answerStreams = 0;
  /** Mandatory-auth mode: what the validation of this tunnel's bearer token said (refreshes update it). */
  credentials: TunnelCredentials | undefined;
  #awayReason: string | undefined;
  #sentAway = false;
  #onClosed!: () => void;
  /** Resolves once the transport is gone (see closed()). */
  readonly whenClosed = new Promise<void>((resolve) => (this.#onClosed = resolve));
  readonly #waiters = new Set<TunnelWaiter>();
  #closeReason: string | undefined;

  constructor(
    readonly transport: TunnelTransport,
    /** Lowercase token from the tunnel path (/primus/<token>/). */
    readonly pathToken: string,
    readonly headerClientId: string | undefined,
    readonly headerRole: string | undefined,
    private readonly hooks: ConnectionHooks,
    private readonly maxFrameBytes: number,
    now = Date.now(),
  ) {
    this.lastSeenAt = now;
    this.openedAt = now;
    this.channel = new EmitterChannel((text) => this.transport.send(text));
  }

  /** `<clientId>:<role>`: the label of this connection in metrics and headers (never the token). */
  get id(): string {
    const clientId = this.identity?.clientId || this.headerClientId || `conn${this.seq}`;
    const role = this.identity?.role || this.headerRole || 'unknown';
    return `${clientId}:${role}`;
  }

  get closeReason(): string | undefined {
    return this.#closeReason;
  }

  get isOurClient(): boolean {
    return this.identity?.capabilities.includes(OUR_CLIENT_CAPABILITY) ?? false;
  }

  /** The client can answer by POST /response-data (else only by ack). */
  get acceptsPostStreams(): boolean {
    return this.identity?.capabilities.includes('post-streams') ?? false;
  }

  /** Sends the server identify: always the first message on a tunnel. */
  open(): void {
    this.transport.send(encodeEvent('identify', [{ capabilities: SERVER_CAPABILITIES }]));
  }

  /** Any packet from the client (message, engine.io pong) proves the tunnel alive. */
  touch(now = Date.now()): void {
    this.lastSeenAt = now;
  }

  silentFor(now = Date.now()): number {
    return now - this.lastSeenAt;
  }

  /** Sends a probe (an extra ping) unless one is unanswered; true when one was sent. */
  probe(timeoutMs: number, now = Date.now()): boolean {
    if (this.probedAt > 0 && this.lastSeenAt < this.probedAt) return false;
    if (!this.transport.ping?.()) return false;
    this.probedAt = now;
    this.#probeDeadline = now + timeoutMs;
    return true;
  }

  /**
   * This server itself did not run for `ms` (a stalled event loop, a starved CPU): a probe
   * outstanding meanwhile gets that time back, since its answer may be sitting unread.
   */
  postponeProbe(ms: number): void {
    if (this.probedAt > 0 && this.lastSeenAt < this.probedAt) this.#probeDeadline += ms;
  }

  /**
   * The last probe went unanswered past its deadline: the client is hung (e.g. SIGSTOP), not
   * dead, so the heartbeat has not closed the tunnel yet. It gets no new requests meanwhile.
   */
  unresponsive(now = Date.now()): boolean {
    return this.probedAt > 0 && this.lastSeenAt < this.probedAt && now > this.#probeDeadline;
  }

  /** Tells everything waiting on this tunnel that it missed its probe (once per missed probe: the caller tracks it). */
  reportUnresponsive(): void {
    for (const w of [...this.#waiters]) w.onTunnelUnresponsive?.(this);
  }

  receive(text: string, now = Date.now()): void {
    this.touch(now);
    if (this.state === 'closed') return;
    let message: TunnelMessage;
    try {
      message = decodeTunnelMessage(text, this.maxFrameBytes);
    } catch (err) {
      this.hooks.onBadFrame(this, err as Error);
      return;
    }
    switch (message.kind) {
      case 'ping':
        this.transport.send(encodePong(message.timestamp));
        this.hooks.onPing(this, message.timestamp);
        return;
      case 'ack':
        this.channel.acknowledge(message);
        this.maybeFinishDrain();
        return;
      case 'event':
        if (message.name === 'identify') this.hooks.onIdentify(this, message.args[0]);
        else this.hooks.onEvent(this, message.name, message.args, message.id);
        return;
      default:
        // pong / server-close / other Primus strings are not for a server.
        return;
    }
  }

  /** A binary message: only our client, offered answers over the tunnel, sends one. */
  receiveBinary(frame: Buffer, now = Date.now()): void {
    this.touch(now);
    if (this.state === 'closed') return;
    if (!this.isOurClient) {
      this.hooks.onBadFrame(this, new ProtocolError('BAD_TUNNEL_ANSWER', 'binary message on the tunnel from a client that cannot answer over it'));
      return;
    }
    this.hooks.onAnswer(this, frame);
  }

  sendEvent(name: string, args: unknown[], onFlushed?: () => void): void {
    if (this.state === 'closed') throw new ProtocolError('CHANNEL_CLOSED', 'tunnel closed');
    this.transport.send(encodeEvent(name, args), onFlushed);
  }

  /** A `request` event whose payload is `request` plus its streamingID (see encodeEventWithStreamingId). */
  sendRequest(request: object, streamingID: string, onFlushed?: () => void): void {
    if (this.state === 'closed') throw new ProtocolError('CHANNEL_CLOSED', 'tunnel closed');
    this.transport.send(encodeEventWithStreamingId('request', request, streamingID), onFlushed);
  }

  attach(waiter: TunnelWaiter): void {
    this.#waiters.add(waiter);
  }

  detach(waiter: TunnelWaiter): void {
    this.#waiters.delete(waiter);
  }

  /** Stops new work; closes once nothing waits on the tunnel itself (acks), or when forced. */
  drain(): void {
    if (this.state === 'closed' || this.state === 'draining') return;
    this.state = 'draining';
  }

  /** No relay waits on this tunnel and no ack is outstanding in either direction. */
  get idle(): boolean {
    return this.inFlight === 0 && this.channel.pendingCount === 0 && this.pendingWebhooks === 0 && this.answerStreams === 0;
  }

  /** The client was told to go elsewhere; its close is on its way. */
  get sentAway(): boolean {
    return this.#sentAway;
  }

  /** Sends the client away as soon as the tunnel is idle (at once if it is). */
  sendAwayWhenIdle(reason: string): void {
    this.#awayReason = reason;
    this.maybeFinishDrain();
  }

  maybeFinishDrain(): void {
    if (this.#awayReason === undefined || this.#sentAway || this.state !== 'draining' || !this.idle) return;
    this.#sentAway = true;
    this.sendAway(this.#awayReason);
  }

  /** Asks the client to go elsewhere. Our client gets primus::server::close + ws 4001; real clients just lose the transport and reconnect. */
  sendAway(reason: string): void {
    if (this.state === 'closed') return;
    if (this.isOurClient) {
      try {
        this.transport.send(encodeServerClose(), () => this.transport.close(4001, reason));
        return;
      } catch {
        // fall through to a plain close
      }
    }
    this.transport.close(4001, reason);
  }

  /** Called by the transport when it is gone (any reason). Idempotent. */
  closed(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.#closeReason = reason;
    this.#onClosed();
    this.channel.close(new ProtocolError('CHANNEL_CLOSED', `tunnel closed: ${reason}`));
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w.onTunnelClosed(this);
    this.hooks.onClosed(this, reason);
  }
}
