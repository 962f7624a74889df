import type { Logger } from '../observability/logger.js';
import { encodePing } from '../protocol/index.js';
import type { TunnelRole } from '../config/client.js';

/**
 * Both heartbeat layers of one tunnel connection: engine.io's (the server pings within
 * pingInterval + pingTimeout, else the connection is dead) and Primus's (we ping every
 * pingIntervalMs and want the pong within pongTimeoutMs). A missed beat terminates the socket.
 */
export class TunnelHeartbeat {
  #engineTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #pongTimer: NodeJS.Timeout | undefined;
  #engineWindow = 0;

  constructor(
    private readonly o: { role: TunnelRole; pingIntervalMs: number; pongTimeoutMs: number; logger: Logger },
    private readonly send: (text: string) => void,
    private readonly terminate: () => void,
  ) {}

  /** The engine.io open packet's timings: the server's pings are due within their sum. */
  opened(pingInterval: number, pingTimeout: number): void {
    this.#engineWindow = pingInterval + pingTimeout;
    this.#armEngine();
  }

  /** An engine.io ping from the server. */
  enginePing(): void {
    if (this.#engineWindow) this.#armEngine();
  }

  #armEngine(): void {
    clearTimeout(this.#engineTimer);
    this.#engineTimer = setTimeout(() => {
      this.o.logger.warn({ role: this.o.role }, 'no engine.io ping from the server in time; reconnecting');
      this.terminate();
    }, this.#engineWindow);
  }

  /** Next Primus ping after pingIntervalMs (after the tunnel is ready, and after each pong). */
  schedulePing(): void {
    clearTimeout(this.#pingTimer);
    this.#pingTimer = setTimeout(() => {
      try {
        this.send(encodePing(Date.now()));
      } catch {
        return;
      }
      clearTimeout(this.#pongTimer);
      this.#pongTimer = setTimeout(() => {
        this.o.logger.warn({ role: this.o.role, timeoutMs: this.o.pongTimeoutMs }, 'no heartbeat answer from the server in time; reconnecting');
        this.terminate();
      }, this.o.pongTimeoutMs);
    }, this.o.pingIntervalMs);
  }

  pong(): void {
    clearTimeout(this.#pongTimer);
    this.schedulePing();
  }

  stop(): void {
    clearTimeout(this.#engineTimer);
    clearTimeout(this.#pingTimer);
    clearTimeout(this.#pongTimer);
  }
}
