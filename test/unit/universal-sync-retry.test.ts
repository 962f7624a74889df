// Until the connections were read once, a failed read is retried within seconds (1 s, doubling),
// not after a whole sync interval: a Snyk API blip at start costs seconds, not a minute.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { ConnectionSync } from '../../src/client/universal/connection-sync.js';
import { createLogger } from '../../src/observability/logger.js';
import { waitFor } from '../support/wait.js';

const logger = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) });

test('a failed first read is retried soon, until one succeeds', async () => {
  let calls = 0;
  const failUntil = 3;
  const sync = new ConnectionSync({
    logger,
    intervalMs: 60_000,
    needsPolling: () => true,
    once: async () => {
      calls++;
      if (calls < failUntil) throw new Error('Snyk API unreachable');
    },
  });
  try {
    const started = Date.now();
    await assert.rejects(sync.first(), /unreachable/);
    sync.startPolling();
    // Retries after 1 s and 2 s: the third call succeeds well before the 60 s interval.
    await waitFor('the third read', () => calls >= 3, { timeoutMs: 10_000 });
    const took = Date.now() - started;
    assert.ok(took < 8000, `took ${took} ms`);
  } finally {
    sync.stop();
  }
});
