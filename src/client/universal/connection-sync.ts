import { describeError } from '../../http/errors.js';
import type { Logger } from '../../observability/logger.js';

export interface ConnectionSyncOptions {
  logger: Logger;
  /** One sync: read the connections and reconcile; throws when they could not be read. */
  once(): Promise<void>;
  intervalMs: number;
  /** Whether the timer should sync now (Snyk's GA client polls only while no tunnel is open). */
  needsPolling(): boolean;
}

/**
 * When the connections are read again: at start, when the server says so (`config/reload`), and
 * on a timer while no tunnel is open. Runs are coalesced as Snyk's are: one at a time, and at
 * most one more queued behind it, whatever the number of triggers.
 */
export class ConnectionSync {
  #running: Promise<void> | undefined;
  #queued: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #retryMs = 1000;
  #succeeded = false;
  #stopped = false;

  constructor(private readonly o: ConnectionSyncOptions) {}

  /** The first sync; its error is the caller's (a refused secret or an unknown deployment stops the start). */
  first(): Promise<void> {
    return this.o.once().then(
      () => {
        this.#succeeded = true;
      },
      (err: unknown) => {
        this.#retryUntilRead();
        throw err;
      },
    );
  }

  /** A sync for `reason`; resolves when a sync that started after this call has ended. Errors are logged, not thrown. */
  run(reason: string): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (!this.#running) {
      this.#running = this.#once(reason).finally(() => {
        this.#running = undefined;
      });
      return this.#running;
    }
    this.#queued ??= this.#running.then(() => {
      this.#queued = undefined;
      return this.run(reason);
    });
    return this.#queued;
  }

  startPolling(): void {
    if (this.#stopped) return;
    this.#timer ??= setInterval(() => {
      if (this.o.needsPolling()) void this.run('no tunnel is open');
    }, this.o.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#retry);
  }

  /** Until the list was read once, a failure is retried soon (1 s doubling up to the interval), not after a whole interval. */
  #retryUntilRead(): void {
    if (this.#succeeded || this.#stopped || this.#retry) return;
    const wait = this.#retryMs;
    this.#retryMs = Math.min(this.#retryMs * 2, this.o.intervalMs);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      void this.run('the connections were not read yet');
    }, wait);
    this.#retry.unref();
  }

  async #once(reason: string): Promise<void> {
    try {
      this.o.logger.debug({ reason }, 'syncing the connections');
      await this.o.once();
      this.#succeeded = true;
    } catch (err) {
      this.o.logger.warn({ reason, err: describeError(err) }, 'connection sync failed; the running connections are kept');
      this.#retryUntilRead();
    }
  }
}
