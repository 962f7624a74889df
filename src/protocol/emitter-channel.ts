import { encodeAck, encodeEvent, type TunnelMessage } from './frames.js';
import { ProtocolError } from './errors.js';

export type Reply = (...args: unknown[]) => void;

interface Pending {
  resolve: (args: unknown[]) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * primus-emitter semantics over any text transport: events out, events with ack ids,
 * and acks back. Ids count up per channel from 1 (what the real peers do). Transport
 * agnostic so the client (ws) and the server (engine.io) share it.
 */
export class EmitterChannel {
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  #closed: Error | undefined;

  constructor(private readonly send: (text: string) => void) {}

  get pendingCount(): number {
    return this.#pending.size;
  }

  emit(name: string, ...args: unknown[]): void {
    if (this.#closed) throw this.#closed;
    this.send(encodeEvent(name, args));
  }

  /** Emits an event with an ack id and resolves with the ack's arguments. */
  call(name: string, args: unknown[], timeoutMs?: number): Promise<unknown[]> {
    if (this.#closed) return Promise.reject(this.#closed);
    const id = this.#nextId++;
    return new Promise<unknown[]>((resolve, reject) => {
      const timer = timeoutMs
        ? setTimeout(() => {
            this.#pending.delete(id);
            reject(new ProtocolError('ACK_TIMEOUT', `no ack for ${name} within ${timeoutMs} ms`));
          }, timeoutMs)
        : undefined;
      timer?.unref();
      this.#pending.set(id, { resolve, reject, timer });
      try {
        this.send(encodeEvent(name, args, id));
      } catch (err) {
        this.#settle(id)?.reject(err as Error);
      }
    });
  }

  /** Builds the reply function for a received event that carries an ack id. Replies at most once. */
  replier(id: number): Reply {
    let done = false;
    return (...args: unknown[]) => {
      if (done || this.#closed) return;
      done = true;
      this.send(encodeAck(id, args));
    };
  }

  /** Feeds a decoded ack; returns false when no call waits for it (late or unknown id). */
  acknowledge(message: Extract<TunnelMessage, { kind: 'ack' }>): boolean {
    const pending = this.#settle(message.id);
    if (!pending) return false;
    pending.resolve(message.args);
    return true;
  }

  /** Rejects every waiting call; later calls fail at once. */
  close(reason: Error = new ProtocolError('CHANNEL_CLOSED', 'tunnel closed')): void {
    if (this.#closed) return;
    this.#closed = reason;
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(reason);
  }

  #settle(id: number): Pending | undefined {
    const pending = this.#pending.get(id);
    if (!pending) return undefined;
    this.#pending.delete(id);
    if (pending.timer) clearTimeout(pending.timer);
    return pending;
  }
}
