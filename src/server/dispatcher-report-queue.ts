import { waitAtMost } from '../http/backoff.js';
import type { DispatcherCall, DispatcherEvent } from './dispatcher-report-calls.js';

const LANES = 4;

function laneOf(key: string): number {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) | 0;
  return Math.abs(h) % LANES;
}

/**
 * Reports waiting for the dispatcher, in a few lanes sent one call at a time each. Events of one
 * connection share a lane, so connected/disconnected keep their order.
 */
export class DispatcherReportQueue {
  readonly #lanes: DispatcherCall[][] = Array.from({ length: LANES }, () => []);
  readonly #running: Array<Promise<void> | undefined> = Array.from({ length: LANES }, () => undefined);
  #queued = 0;
  #closed = false;
  /** While closing, queued reports still go out but no new ones are taken. */
  #closing = false;

  constructor(
    private readonly send: (call: DispatcherCall) => Promise<void>,
    /** Events waiting beyond maxQueued are dropped (pings first); `dropped` hears of each report refused. */
    private readonly opts: { maxQueued: number; dropped: (call: DispatcherCall) => void },
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  enqueue(key: string, call: DispatcherCall): void {
    if (this.#closed || this.#closing) return;
    if (this.#queued >= this.opts.maxQueued) {
      // Drop the oldest ping anywhere; if none, drop this report.
      const lane = this.#lanes.find((l) => l.some((c) => c.event === 'client-pinged'));
      if (lane) {
        lane.splice(lane.findIndex((c) => c.event === 'client-pinged'), 1);
        this.#queued--;
      } else {
        this.opts.dropped(call);
        return;
      }
    }
    const lane = laneOf(key);
    this.#lanes[lane].push(call);
    this.#queued++;
    this.#pump(lane);
  }

  /** Whether a report of this event is waiting (not yet on the wire). */
  has(event: DispatcherEvent): boolean {
    return this.#lanes.some((l) => l.some((c) => c.event === event));
  }

  /** Takes every waiting report of this event out. */
  remove(event: DispatcherEvent): void {
    for (const lane of this.#lanes) {
      for (let i = lane.length - 1; i >= 0; i--) {
        if (lane[i].event === event) {
          lane.splice(i, 1);
          this.#queued--;
        }
      }
    }
  }

  /** The call on the wire in the lane of this key, if any. */
  inFlight(key: string): Promise<void> | undefined {
    return this.#running[laneOf(key)];
  }

  /** Stops taking new reports; those queued still go out. */
  stopTaking(): void {
    this.#closing = true;
  }

  /** Sends what is queued, waiting at most waitMs, then stops. */
  async flush(waitMs: number): Promise<void> {
    this.#lanes.forEach((_, lane) => this.#pump(lane));
    const flushed = (async () => {
      // Each finished call pumps its lane's next one, so wait until nothing runs any more.
      while (this.#running.some(Boolean)) await Promise.all(this.#running.filter((p): p is Promise<void> => p !== undefined));
    })();
    await waitAtMost(flushed, waitMs);
    this.#closed = true;
  }

  #pump(lane: number): void {
    if (this.#running[lane] || this.#closed) return;
    const next = this.#lanes[lane].shift();
    if (!next) return;
    this.#queued--;
    this.#running[lane] = this.send(next).finally(() => {
      this.#running[lane] = undefined;
      this.#pump(lane);
    });
  }
}
