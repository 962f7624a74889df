/**
 * Ids marked for a while (a peer that could not be reached, a peer that failed its liveness
 * probe, a token seen with tunnels): a mark lapses on its own, and is dropped when it is read
 * or swept after that.
 */
export class TimedMarks {
  readonly #until = new Map<string, number>();
  constructor(private readonly forMs: number) {}

  mark(id: string, now = Date.now()): void {
    this.#until.set(id, now + this.forMs);
  }

  clear(id: string): void {
    this.#until.delete(id);
  }

  has(id: string, now = Date.now()): boolean {
    const until = this.#until.get(id);
    if (until === undefined) return false;
    if (now < until) return true;
    this.#until.delete(id);
    return false;
  }

  /** Drops the lapsed marks (for ids that may never be read again). */
  sweep(now = Date.now()): void {
    for (const [id, until] of this.#until) if (now >= until) this.#until.delete(id);
  }
}
