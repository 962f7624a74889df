import type { RelayAttempt } from './relay-attempt.js';

/** streamingID → the attempt waiting for that POST /response-data. */
export class PendingAnswers {
  readonly #byId = new Map<string, RelayAttempt>();
  add(attempt: RelayAttempt): void {
    this.#byId.set(attempt.streamingID, attempt);
  }
  delete(attempt: RelayAttempt): void {
    if (this.#byId.get(attempt.streamingID) === attempt) this.#byId.delete(attempt.streamingID);
  }
  get(streamingID: string): RelayAttempt | undefined {
    return this.#byId.get(streamingID);
  }
  get size(): number {
    return this.#byId.size;
  }
}
