const MAX_TIMER_MS = 2 ** 31 - 1;

/** The clock a DeadlineQueue reads and arms; tests pass a fake one. */
export interface DeadlineClock {
  now(): number;
  setTimer(fire: () => void, ms: number): unknown;
  clearTimer(timer: unknown): void;
}

/** Monotonic time and Node's timers (unref'd: a deadline alone keeps no process alive). */
export const systemClock: DeadlineClock = {
  now: () => performance.now(),
  setTimer(fire, ms) {
    const timer = setTimeout(fire, ms);
    timer.unref();
    return timer;
  },
  clearTimer: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

/**
 * Deadlines that all have the same duration, for items added and removed at a high rate (one
 * per relayed request). A `setTimeout` per item costs a timer-list insert and unenroll each,
 * plus a Timeout object; here an item is one Map entry, and one timer is armed for the earliest
 * live deadline. Equal durations make insertion order deadline order, so the Map (which keeps
 * insertion order) is the queue and removal is a Map delete, O(1).
 *
 * An item expires no earlier than `durationMs` after it was added, and, when the timer fires on
 * time, no later. Removing an item that already expired, or was never added, does nothing.
 */
export class DeadlineQueue<T> {
  /** item → when it expires (clock time). */
  readonly #due = new Map<T, number>();
  #timer: unknown;
  #armed = false;
  /** Expired items are being handed out: an add then must not arm a second timer. */
  #firing = false;

  constructor(
    readonly durationMs: number,
    private readonly onExpire: (item: T) => void,
    private readonly clock: DeadlineClock = systemClock,
  ) {}

  get size(): number {
    return this.#due.size;
  }

  /** Starts the item's deadline; an item already waiting starts over (at the back). */
  add(item: T): void {
    const due = this.clock.now() + this.durationMs;
    this.#due.delete(item);
    this.#due.set(item, due);
    // Every earlier item is due no later than this one: an armed timer already fires in time.
    if (!this.#armed && !this.#firing) this.#arm(due);
  }

  /** The item no longer has a deadline. The timer stays armed: when it fires it finds the next live item. */
  delete(item: T): void {
    this.#due.delete(item);
  }

  has(item: T): boolean {
    return this.#due.has(item);
  }

  /** Stops the timer and forgets every item (none expires). */
  clear(): void {
    this.#due.clear();
    if (this.#armed) this.clock.clearTimer(this.#timer);
    this.#armed = false;
    this.#timer = undefined;
  }

  #arm(due: number): void {
    this.#armed = true;
    // Node's timers take at most 2^31-1 ms (longer fires at once); a later deadline waits in steps.
    this.#timer = this.clock.setTimer(() => this.#fire(), Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(due - this.clock.now()))));
  }

  #fire(): void {
    this.#armed = false;
    this.#timer = undefined;
    this.#firing = true;
    try {
      const now = this.clock.now();
      for (const [item, due] of this.#due) {
        if (due > now) break;
        this.#due.delete(item);
        this.onExpire(item);
      }
    } finally {
      // Also after a handler threw: the later items keep a timer.
      this.#firing = false;
      const next = this.#due.values().next();
      if (!next.done && !this.#armed) this.#arm(next.value);
    }
  }
}
