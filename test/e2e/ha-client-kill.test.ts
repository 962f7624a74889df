// Issue 4 proof 2: kill -9 one of 4 HA clients under steady GET load through the shared URL:
// no GET fails (the servers retry a GET whose tunnel dropped on another client), and the 5th
// client, waiting for a slot (429 + Retry-After), is allocated and serving within 5 s.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HaCluster, describeFailures, logLines } from '../support/ha-cluster.js';
import { waitFor } from '../support/wait.js';

// Every answer takes 250 ms, so ~10 requests are in flight at any moment of the load.
const cluster = new HaCluster({ servers: 3, originDelayMs: 250 });

before(async () => {
  await cluster.start();
  for (const n of [1, 2, 3, 4]) await cluster.startClient(n);
  await cluster.waitReady(cluster.clients);
});

after(async () => {
  const output = await cluster.stop();
  assert.ok(!output.includes(cluster.token), 'the token appears in process output');
});

test('kill -9 a client under load: zero failed GETs, the waiting 5th client serves within 5 s', async () => {
  const fifth = await cluster.startClient(5);
  // The 5th is refused (token full) and keeps asking; it is not ready.
  await waitFor('the 5th client refused by the dispatcher', () => logLines(fifth.proc).some((e) => e.msg === 'dispatcher allocation failed; retrying' && /429/.test(String(e.err))), { timeoutMs: 30_000 });
  assert.equal(await cluster.isReady(fifth), false, 'the 5th client is ready while 4 hold the token');

  const load = cluster.startLoad(40);
  // Steady state first: every running client serves.
  await waitFor('clients 1-4 serving under load', () => [1, 2, 3, 4].every((n) => (cluster.origin.served.get(`c${n}`) ?? 0) > 5), { timeoutMs: 30_000, intervalMs: 100 });
  // Let the 5th wait through several Retry-After rounds before the slot frees.
  await waitFor('the 5th refused 3 times', () => logLines(fifth.proc).filter((e) => e.msg === 'dispatcher allocation failed; retrying').length >= 3, { timeoutMs: 30_000 });
  assert.equal(cluster.origin.served.get('c5'), undefined, 'the 5th served before a slot freed');

  const victim = cluster.client(2);
  const killedAt = Date.now();
  victim.proc.kill('SIGKILL');
  const readyAt = await waitFor('the 5th client ready', async () => ((await cluster.isReady(fifth)) ? Date.now() : 0), { timeoutMs: 30_000, intervalMs: 100 });
  const servedAt = await waitFor('the 5th client serving', () => cluster.origin.firstSeen.get('c5'), { timeoutMs: 30_000, intervalMs: 50 });
  await waitFor('the 5th client served 20 requests', () => (cluster.origin.served.get('c5') ?? 0) >= 20, { timeoutMs: 30_000, intervalMs: 100 });
  const servedBefore = cluster.origin.served.get('c2') ?? 0;
  await load.stop();

  const readyMs = readyAt - killedAt;
  const servedMs = servedAt - killedAt;
  const allocatedLine = logLines(fifth.proc).find((e) => e.msg === 'received server id');
  console.log(`# kill -9 → 5th ready ${readyMs} ms, first request served ${servedMs} ms; ${load.sent} GETs sent, ${load.failures.length} failed`);
  assert.ok(allocatedLine, 'the 5th client never received a server id');
  assert.ok(Math.min(readyMs, servedMs) <= 5000, `the 5th client took over ${Math.min(readyMs, servedMs)} ms after the kill (ready after ${readyMs} ms, first served after ${servedMs} ms): more than 5 s`);
  assert.equal(load.failures.length, 0, describeFailures(load.failures, killedAt));
  assert.equal(load.ok, load.sent);
  assert.equal(cluster.origin.served.get('c2'), servedBefore, 'the killed client kept serving');
  assert.equal(await victim.proc.exited, 'SIGKILL');
});
