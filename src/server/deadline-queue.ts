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

/** An item's place in a DeadlineQueue: what `delete` takes. */
export interface Deadline {
  /** When it expires (clock time). */
  readonly due: number;
}

class Entry<T> implements Deadline {
  prev: Entry<T> | undefined;
  next: Entry<T> | undefined;
  /** False once expired or deleted. */
  linked = true;
  constructor(
    readonly item: T,
    readonly due: number,
  ) {}
}

/**
 * Deadlines that all have the same duration, for items added and removed at a high rate (one
 * per relayed request). A `setTimeout` per item costs a timer-list insert and unenroll each,
 * plus a Timeout object; here an item is one small list entry, and one timer is armed for the
 * earliest live deadline. Equal durations make insertion order deadline order, so the queue is
 * a doubly linked list: add appends, delete unlinks, both O(1) without hashing.
 *
 * An item expires no earlier than `durationMs` after it was added, and, when the timer fires on
 * time, no later. Deleting a deadline that already expired or was deleted does nothing.
 */
export class DeadlineQueue<T> {
  #head: Entry<T> | undefined;
  #tail: Entry<T> | undefined;
  #size = 0;
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
    return this.#size;
  }

  /** Starts a deadline for the item; keep what it returns to delete it. */
  add(item: T): Deadline {
    const entry = new Entry(item, this.clock.now() + this.durationMs);
    if (this.#tail) {
      this.#tail.next = entry;
      entry.prev = this.#tail;
    } else {
      this.#head = entry;
    }
    this.#tail = entry;
    this.#size++;
    // Every earlier item is due no later than this one: an armed timer already fires in time.
    if (!this.#armed && !this.#firing) this.#arm(entry.due);
    return entry;
  }

  /** The deadline is off. The timer stays armed: when it fires it finds the next live item. */
  delete(deadline: Deadline | undefined): void {
    const entry = deadline as Entry<T> | undefined;
    if (!entry?.linked) return;
    entry.linked = false;
    if (entry.prev) entry.prev.next = entry.next;
    else this.#head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else this.#tail = entry.prev;
    entry.prev = entry.next = undefined;
    this.#size--;
  }

  /** Stops the timer and forgets every item (none expires). */
  clear(): void {
    while (this.#head) this.delete(this.#head);
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
      for (let entry = this.#head; entry !== undefined && entry.due <= now; entry = this.#head) {
        this.delete(entry);
        this.onExpire(entry.item);
      }
    } finally {
      // Also after a handler threw: the later items keep a timer.
      this.#firing = false;
      if (this.#head && !this.#armed) this.#arm(this.#head.due);
    }
  }
}
