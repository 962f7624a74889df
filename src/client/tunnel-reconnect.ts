import type { TunnelRole } from '../config/client.js';
import { backoffDelay } from '../http/backoff.js';
import type { Logger } from '../observability/logger.js';
import type { SessionEnd } from './tunnel-session.js';
import type { Placement } from './tunnel-urls.js';

/** The close code our broker server uses to send clients elsewhere while it drains. */
export const SERVER_DRAINING_CLOSE_CODE = 4001;

/**
 * When and where a tunnel reconnects: jittered capped backoff that grows with failed attempts
 * and with new placements asked for since the last ready tunnel (so a dispatcher that keeps
 * naming a dead server is asked again sooner at first, then slower), and the switch from a
 * dispatcher's direct server URL to BROKER_SERVER_URL when the direct one is out of reach.
 */
export class ReconnectPolicy {
  #failures = 0;
  #cycles = 0;
  readonly #goneAfter: number;
  /** The placement whose direct URL failed: later attempts for it go to its fallback URL. */
  #directFailed: Placement | undefined;
  /**
   * Direct URLs that have carried a tunnel: when one fails later (even in a new allocation
   * naming the same server) the server is gone (killed, restarting), not out of this
   * network's reach, so no switch to the fallback.
   */
  readonly #directWorked = new Set<string>();

  constructor(
    private readonly o: { role: TunnelRole; logger: Logger; failuresBeforeGone?: number },
    /** The server is going away (it closed us deliberately) or keeps refusing us; true when a new placement was asked for. */
    private readonly serverGone: { drained(): void; unreachable(): boolean | void },
  ) {
    this.#goneAfter = Math.max(1, o.failuresBeforeGone ?? 2);
  }

  /** The wait after the placement could not be had. */
  noPlacement(): number {
    return backoffDelay(this.#failures++);
  }

  /** Where to connect for `allocated`: its fallback URL once its direct URL proved out of reach. */
  target(allocated: Placement): Placement {
    return this.#directFailed === allocated && allocated.fallbackUrl ? { serverUrl: allocated.fallbackUrl, serverId: allocated.serverId } : allocated;
  }

  /** Learns from a connection to `placement` (for `allocated`) that ended. */
  ended(allocated: Placement, placement: Placement, result: SessionEnd): void {
    const direct = placement === allocated && allocated.fallbackUrl !== undefined;
    if (result.wasReady && direct) this.#directWorked.add(allocated.serverUrl);
    if (!result.wasReady && direct && !result.serverClose && !this.#directWorked.has(allocated.serverUrl)) {
      this.o.logger.warn({ role: this.o.role, serverUrl: allocated.serverUrl, fallbackUrl: allocated.fallbackUrl, serverId: allocated.serverId }, 'the server URL from the dispatcher is not reachable from here; using BROKER_SERVER_URL with server_id');
      this.#directFailed = allocated;
    }
  }

  /** The wait before the next attempt after `result`; tells the tunnel's owner when the server seems gone. */
  nextWait(result: SessionEnd): number {
    let wait: number;
    if (result.wasReady) {
      this.#failures = 0;
      this.#cycles = 0;
      wait = backoffDelay(0);
    } else {
      this.#failures++;
      wait = backoffDelay(this.#failures + this.#cycles);
    }
    if (result.serverClose || result.code === SERVER_DRAINING_CLOSE_CODE) {
      this.o.logger.info({ role: this.o.role, code: result.code, reason: result.reason }, 'broker server closed the tunnel deliberately; reconnecting elsewhere');
      this.serverGone.drained();
      wait = backoffDelay(0);
    } else if (!result.wasReady && this.#failures % this.#goneAfter === 0) {
      // A killed server is not coming back soon: after a couple of failures a new placement
      // (HA mode) is tried at once rather than after the grown backoff.
      if (this.serverGone.unreachable() === true) {
        this.#cycles++;
        this.#failures = 0;
        wait = backoffDelay(this.#cycles - 1);
      }
    }
    this.o.logger.info({ role: this.o.role, attempt: this.#failures, delayMs: wait, code: result.code, reason: result.reason }, 'tunnel closed; reconnecting');
    return wait;
  }
}
