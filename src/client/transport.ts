import { EventEmitter } from 'node:events';
import type { Agent } from 'node:http';
import WebSocket from 'ws';
import type { Egress } from '../http/egress.js';
import { describeError, explainCertificateError } from '../http/errors.js';
import { createWriteBatcher, socketUnderWebSocket, type Corkable } from '../http/write-batch.js';
import { maskedFrameSink, type FrameSink } from './masked-frames.js';
import { decodeEnginePayload, encodeEnginePacket, parseOpenData, RECORD_SEPARATOR } from '../protocol/index.js';

/**
 * One engine.io v4 session as seen by a tunnel: text packets in and out, then a close. Two
 * kinds: a direct websocket (the default) and HTTP long-polling, for networks whose proxies
 * break websockets (the real client also starts on polling).
 */
export interface TunnelTransport {
  readonly isOpen: boolean;
  /** Sends one engine.io packet; `cb` runs once it is written (backpressure for streams). */
  send(packet: string, cb?: (err?: Error) => void): void;
  /** Sends one binary message (websocket only: engine.io v4 sends it as a binary frame). */
  sendBinary?(data: Buffer, cb?: (err?: Error) => void): void;
  /** Where answer streams build their binary messages (websocket only). */
  readonly frameSink?: FrameSink;
  close(code: number, reason: string): void;
  terminate(): void;
  on(event: 'message', listener: (packet: string, isBinary: boolean) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  /** The server refused the handshake with this HTTP status (before 'error'). */
  on(event: 'refused', listener: (status: number) => void): this;
  on(event: 'close', listener: (code: number, reason: string) => void): this;
}

export type TransportKind = 'websocket' | 'polling';

/** An error whose message says what is wrong with the server's TLS certificate and what to set; `tlsCode` names it. */
export class TunnelTlsError extends Error {
  constructor(
    message: string,
    readonly tlsCode: string,
  ) {
    super(message);
  }
}

/**
 * Turns a certificate failure on the tunnel into a message an operator can act on (which URL,
 * which OpenSSL code, which variable fixes it); other errors pass through unchanged.
 */
export function explainTunnelError(err: unknown, url: string): Error {
  const explained = explainCertificateError(err, url, 'BROKER_SERVER_URL');
  if (explained === undefined) return err instanceof Error ? err : new Error(describeError(err));
  return new TunnelTlsError(explained.message, explained.code);
}

export interface TransportOptions {
  /** http(s) URL of the engine.io endpoint with the tunnel's query (no EIO/transport). */
  url: string;
  headers: Record<string, string>;
  connectTimeoutMs: number;
  maxPayload: number;
  agent?: Agent;
  tls?: { ca?: string[]; rejectUnauthorized?: boolean };
  /** The egress stack: polling requests go through it (proxy, CA, timeouts). */
  egress?: Egress;
}

class WebSocketTransport extends EventEmitter implements TunnelTransport {
  readonly #ws: WebSocket;
  readonly #batch = createWriteBatcher();
  readonly frameSink = maskedFrameSink((frame, cb) => this.#writeFrame(frame, cb));
  constructor(o: TransportOptions) {
    super();
    const url = new URL(o.url);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = `${url.search ? `${url.search}&` : '?'}EIO=4&transport=websocket`;
    this.#ws = new WebSocket(url.toString(), {
      headers: o.headers,
      handshakeTimeout: o.connectTimeoutMs,
      perMessageDeflate: false,
      maxPayload: o.maxPayload,
      agent: o.agent,
      ...(o.tls ?? {}),
    });
    this.#ws.on('message', (data, isBinary) => {
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
      this.emit('message', text, isBinary);
    });
    this.#ws.on('error', (err) => {
      // ws words a refused upgrade as "Unexpected server response: 401"; a 401 means the bearer is stale.
      const refused = /^Unexpected server response: (\d{3})$/.exec(err.message);
      if (refused) this.emit('refused', Number(refused[1]));
      this.emit('error', explainTunnelError(err, url.toString()));
    });
    this.#ws.on('close', (code, reason) => this.emit('close', code, reason.toString('utf8')));
  }
  get isOpen(): boolean {
    return this.#ws.readyState === WebSocket.OPEN;
  }
  send(packet: string, cb?: (err?: Error) => void): void {
    this.#batch(socketUnderWebSocket(this.#ws));
    this.#ws.send(packet, cb);
  }
  sendBinary(data: Buffer, cb?: (err?: Error) => void): void {
    this.#batch(socketUnderWebSocket(this.#ws));
    this.#ws.send(data, { binary: true }, cb);
  }
  /**
   * A frame built by frameSink, written to the socket under `ws` in order with ws's own frames
   * (ws writes each frame straight to the socket: no compression, so it never queues).
   */
  #writeFrame(frame: Buffer, cb: (err?: Error | null) => void): void {
    const socket = socketUnderWebSocket(this.#ws) as (Corkable & { write(b: Buffer, cb: (err?: Error | null) => void): boolean }) | undefined;
    if (this.#ws.readyState !== WebSocket.OPEN || !socket) return void process.nextTick(cb, new Error('websocket is not open'));
    this.#batch(socket);
    socket.write(frame, cb);
  }
  close(code: number, reason: string): void {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(code, reason);
    else this.#ws.terminate();
  }
  terminate(): void {
    this.#ws.terminate();
  }
}

/**
 * engine.io v4 long-polling: GET to open (answer `0{sid...}`), then a GET loop that waits for
 * packets and POSTs that carry ours (`\x1e`-separated). Every request goes through the egress
 * stack, so proxies and custom CAs apply as for any other call.
 */
class PollingTransport extends EventEmitter implements TunnelTransport {
  #sid: string | undefined;
  #open = false;
  #closed = false;
  #queue: Array<{ packet: string; cb?: (err?: Error) => void }> = [];
  #posting = false;
  #pollWindowMs = 60_000;
  readonly #abort = new AbortController();

  constructor(private readonly o: TransportOptions) {
    super();
    if (!o.egress) throw new Error('polling transport needs the egress stack');
    void this.#run();
  }

  get isOpen(): boolean {
    return this.#open && !this.#closed;
  }

  #url(): string {
    const url = new URL(this.o.url);
    const params = new URLSearchParams(url.search);
    params.set('EIO', '4');
    params.set('transport', 'polling');
    params.set('t', Date.now().toString(36) + Math.random().toString(36).slice(2, 6));
    if (this.#sid) params.set('sid', this.#sid);
    url.search = params.toString();
    return url.toString();
  }

  async #request(method: 'GET' | 'POST', timeoutMs: number, body?: string, detached = false): Promise<string> {
    const signal = detached ? AbortSignal.timeout(timeoutMs) : AbortSignal.any([this.#abort.signal, AbortSignal.timeout(timeoutMs)]);
    const res = await this.o.egress!.request(this.#url(), {
      method,
      headers: { ...this.o.headers, ...(body !== undefined ? { 'content-type': 'text/plain;charset=UTF-8' } : {}) },
      body,
      signal,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200 && !this.#open) this.emit('refused', res.statusCode);
    if (res.statusCode !== 200) throw new Error(`engine.io polling ${method} answered ${res.statusCode}: ${text.slice(0, 200)}`);
    return text;
  }

  async #run(): Promise<void> {
    try {
      const first = await this.#request('GET', this.o.connectTimeoutMs);
      const packets = decodeEnginePayload(first);
      const open = packets[0];
      if (!open || open.type !== 'open') throw new Error('engine.io polling handshake did not start with an open packet');
      const data = parseOpenData(open.data);
      this.#sid = data.sid;
      this.#pollWindowMs = data.pingInterval + data.pingTimeout + 5_000;
      this.#open = true;
      for (const p of packets) this.emit('message', encodeEnginePacket(p.type, p.data), false);
      this.#flush();
      while (!this.#closed) {
        const text = await this.#request('GET', this.#pollWindowMs);
        for (const p of decodeEnginePayload(text)) {
          if (this.#closed) return;
          if (p.type === 'close') return this.#finish(1000, 'server closed');
          if (p.type === 'noop') continue;
          this.emit('message', encodeEnginePacket(p.type, p.data), false);
        }
      }
    } catch (err) {
      if (this.#closed) return;
      this.emit('error', explainTunnelError(err, this.o.url));
      this.#finish(1006, 'polling failed');
    }
  }

  #flush(): void {
    if (this.#posting || this.#queue.length === 0 || !this.#open || this.#closed) return;
    const batch = this.#queue;
    this.#queue = [];
    this.#posting = true;
    this.#request('POST', this.#pollWindowMs, batch.map((b) => b.packet).join(RECORD_SEPARATOR)).then(
      () => {
        this.#posting = false;
        for (const b of batch) b.cb?.();
        this.#flush();
      },
      (err: unknown) => {
        this.#posting = false;
        const e = explainTunnelError(err, this.o.url);
        for (const b of batch) b.cb?.(e);
        if (!this.#closed) {
          this.emit('error', e);
          this.#finish(1006, 'polling send failed');
        }
      },
    );
  }

  send(packet: string, cb?: (err?: Error) => void): void {
    if (this.#closed) {
      cb?.(new Error('transport closed'));
      return;
    }
    this.#queue.push({ packet, cb });
    this.#flush();
  }

  close(code: number, reason: string): void {
    if (this.#closed) return;
    if (this.#open) {
      // Best effort: tell the server, then stop.
      this.#request('POST', 2000, encodeEnginePacket('close'), true).catch(() => undefined);
    }
    this.#finish(code, reason);
  }

  terminate(): void {
    this.#finish(1006, 'terminated');
  }

  #finish(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#open = false;
    for (const b of this.#queue) b.cb?.(new Error('transport closed'));
    this.#queue = [];
    this.#abort.abort();
    this.emit('close', code, reason);
  }
}

export function createTransport(kind: TransportKind, o: TransportOptions): TunnelTransport {
  return kind === 'polling' ? new PollingTransport(o) : new WebSocketTransport(o);
}
