/**
 * Full-jitter exponential backoff: a random delay in [base/2, min(cap, base·2^attempt)].
 * The lower bound keeps a thundering herd of reconnects from landing at once.
 */
export function backoffDelay(attempt: number, { baseMs = 500, capMs = 30_000, random = Math.random } = {}): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  const floor = Math.min(baseMs / 2, ceiling);
  return Math.round(floor + random() * (ceiling - floor));
}

/**
 * Waits for `p`, but at most `ms`: then it resolves without `p`'s value. A rejection of `p`
 * within the time is passed on. The timer is cleared either way.
 */
export function waitAtMost(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise((r) => (timer = setTimeout(r, Math.max(0, ms))))]).finally(() => clearTimeout(timer));
}

/** Resolves after `ms`, or early (without error) when the signal aborts. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
