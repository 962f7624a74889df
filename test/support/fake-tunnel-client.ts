import { WebSocket } from 'ws';
import { request as httpRequest } from 'node:http';
import { decodeTunnelMessage, encodeAck, encodeEvent, encodePing, type TunnelMessage } from '../../src/protocol/index.js';

export interface ScriptedRequest {
  args: unknown[];
  id?: number;
}

/**
 * A scripted broker client speaking engine.io v4 over a direct websocket: for server tests
 * that need to misbehave on purpose (bad answers, silence, dying mid-answer).
 */
export class FakeTunnelClient {
  readonly ws: WebSocket;
  readonly messages: TunnelMessage[] = [];
  readonly requests: ScriptedRequest[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: Array<() => void> = [];
  #nextId = 1;
  readonly #acks = new Map<number, (args: unknown[]) => void>();
  /** Answer engine.io pings (a silent client can switch this off). */
  answerPings = true;

  constructor(
    readonly serverUrl: string,
    readonly token: string,
    readonly options: { clientId?: string; instanceId?: string; role?: string; version?: string; capabilities?: string[]; identify?: boolean; query?: string; headers?: Record<string, string> } = {},
  ) {
    const base = serverUrl.replace(/^http/, 'ws');
    this.ws = new WebSocket(`${base}/primus/${token}/?${options.query ? `${options.query}&` : ''}connection_role=${options.role ?? 'primary'}&EIO=4&transport=websocket`, {
      headers: { 'x-snyk-broker-client-id': options.clientId ?? 'fake-client', 'x-snyk-broker-client-role': options.role ?? 'primary', 'x-broker-client-version': options.version ?? 'local', ...options.headers },
    });
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('error', reject);
      this.ws.on('message', (data) => {
        const text = data.toString();
        if (text.startsWith('0')) return resolve();
        if (text === '2') {
          if (this.answerPings) this.ws.send('3');
          return;
        }
        if (!text.startsWith('4')) return;
        const message = decodeTunnelMessage(text.slice(1));
        this.messages.push(message);
        if (message.kind === 'event' && message.name === 'identify' && options.identify !== false) this.identify();
        if (message.kind === 'event' && message.name === 'request') this.requests.push({ args: message.args, id: message.id });
        if (message.kind === 'ack') this.#acks.get(message.id)?.(message.args);
        for (const w of this.#waiters.splice(0)) w();
      });
    });
  }

  identify(token = this.token): void {
    this.sendRaw(
      encodeEvent('identify', [
        {
          token,
          metadata: {
            capabilities: this.options.capabilities ?? ['post-streams'],
            clientId: this.options.clientId ?? 'fake-client',
            version: this.options.version ?? 'local',
            role: this.options.role ?? 'primary',
            ...(this.options.instanceId ? { instanceId: this.options.instanceId } : {}),
          },
        },
      ]),
    );
  }

  sendRaw(text: string): void {
    this.ws.send(`4${text}`);
  }

  ping(timestamp = Date.now()): void {
    this.sendRaw(encodePing(timestamp));
  }

  /** Sends an event with an ack id (a webhook) and resolves with the ack's arguments. */
  call(name: string, args: unknown[]): Promise<unknown[]> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#acks.set(id, resolve);
      this.sendRaw(encodeEvent(name, args, id));
    });
  }

  ack(id: number, args: unknown[]): void {
    this.sendRaw(encodeAck(id, args));
  }

  /** Resolves when a message satisfies the predicate (checked on every arrival). */
  async waitFor<T>(what: string, check: () => T | undefined, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  nextRequest(index: number): Promise<ScriptedRequest> {
    return this.waitFor(`request #${index}`, () => this.requests[index]);
  }

  close(): void {
    this.ws.terminate();
  }
}

/** POSTs raw bytes to /response-data as a client would; `parts` are written with optional pauses; `abort` cuts the upload. */
export function postResponseData(
  serverUrl: string,
  token: string,
  streamingID: string,
  parts: Buffer[],
  options: { abortAfterParts?: boolean } = {},
): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const url = new URL(`/response-data/${token}/${streamingID}`, serverUrl);
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/vnd.broker.stream+octet-stream', 'transfer-encoding': 'chunked' } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
      res.on('error', (err) => resolve({ error: err.message }));
    });
    req.on('error', (err) => resolve({ error: err.message }));
    for (const p of parts) req.write(p);
    if (options.abortAfterParts) setTimeout(() => req.destroy(), 100);
    else req.end();
  });
}
