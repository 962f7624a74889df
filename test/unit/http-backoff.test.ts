import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, waitAtMost } from '../../src/http/backoff.js';

test('waitAtMost: takes the promise when it is first, gives up after the time when it never settles, passes a rejection on', async () => {
  assert.equal(await waitAtMost(Promise.resolve('done'), 10_000), 'done');
  const never = new Promise(() => {});
  const started = performance.now();
  assert.equal(await waitAtMost(never, 20), undefined);
  assert.ok(performance.now() - started >= 15, 'waited for the time given');
  await assert.rejects(waitAtMost(Promise.reject(new Error('boom')), 10_000), /boom/);
  // A negative time (a deadline already past) does not wait.
  assert.equal(await waitAtMost(never, -5), undefined);
});

test('backoffDelay: within [base/2, min(cap, base * 2^attempt)]', () => {
  for (const attempt of [0, 1, 5, 40]) {
    const low = backoffDelay(attempt, { baseMs: 500, capMs: 30_000, random: () => 0 });
    const high = backoffDelay(attempt, { baseMs: 500, capMs: 30_000, random: () => 1 });
    assert.equal(low, 250);
    assert.equal(high, Math.min(30_000, 500 * 2 ** attempt));
  }
});
