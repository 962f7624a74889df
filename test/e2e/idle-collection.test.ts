import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Pool } from 'undici';
import { ProcessGroup } from '../support/processes.js';
import { freePort } from '../support/ports.js';

const group = new ProcessGroup();
after(() => group.stopAll());

const LINE = 'idle after a busy spell: full garbage collection';

/** Keeps `concurrency` requests in flight against each URL until `ms` have passed. */
async function load(urls: string[], ms: number, concurrency = 16): Promise<number> {
  const pools = urls.map((u) => new Pool(u, { connections: concurrency }));
  const until = Date.now() + ms;
  let done = 0;
  try {
    await Promise.all(pools.flatMap((pool) => Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        const res = await pool.request({ path: '/healthcheck', method: 'GET' });
        await res.body.dump();
        done++;
      }
    })));
  } finally {
    await Promise.all(pools.map((p) => p.close()));
  }
  return done;
}

test('a server gives its memory back once idle after a busy spell (and not with BROKER_NODE_IDLE_GC=false)', async () => {
  const [on, off] = [await freePort(), await freePort()];
  const withIdle = group.broker('idle-gc', 'server', { PORT: String(on), LOG_LEVEL: 'debug' });
  const without = group.broker('no-idle-gc', 'server', { PORT: String(off), LOG_LEVEL: 'debug', BROKER_NODE_IDLE_GC: 'false' });
  await Promise.all([withIdle.waitForOutput('broker server listening'), without.waitForOutput('broker server listening')]);
  assert.ok(!withIdle.output().includes(LINE), 'no collection before any load');
  // Two full windows (5 s each) of load make at least one busy window whatever the phase.
  const served = await load([`http://127.0.0.1:${on}`, `http://127.0.0.1:${off}`], 11_000);
  assert.ok(served > 1000, `load served ${served} requests`);
  await withIdle.waitForOutput(LINE, 20_000);
  const line = withIdle.output().split('\n').find((l) => l.includes(LINE))!;
  const fields = JSON.parse(line) as { heapBeforeMiB: number; heapAfterMiB: number; durationMs: number };
  assert.ok(fields.heapAfterMiB <= fields.heapBeforeMiB, line);
  assert.equal(typeof fields.durationMs, 'number');
  // The same load and the same wait: the server with it turned off never collected.
  assert.ok(!without.output().includes(LINE), 'BROKER_NODE_IDLE_GC=false: no idle collection');
});
