// Fault suite, dispatcher faults (issue 6), under steady mixed GET/POST load through the shared URL:
//  - the dispatcher killed (-9) for 30 s, then started again (its memory store empty);
//  - the dispatcher restarted at once (SIGTERM) with an empty memory store;
//  - with the Redis store: two dispatcher replicas on one redis-server, Redis restarted (empty).
// Nothing on the request path needs the dispatcher, so no request may fail. After each fault the
// servers re-register (every 15 s, or on the dispatcher's hint) and report their tunnels, and the
// dispatcher's view converges: the 4 clients allocated and connected, and a 5th client is refused
// (the rebuilt state knows the token is full).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { clusterForFile, httpStatus, logLines, type HaCluster } from '../support/ha-cluster.js';
import { assertFaultGoal, startSteadyLoad, summaryLine } from '../support/steady-load.js';
import type { RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startRedis, type RedisInstance } from '../support/redis.js';
import { waitFor } from '../support/wait.js';

const OUTAGE_MS = 30_000;
/** The load runs at least this long after a fault, so every scenario's numbers cover recovery and after. */
const AFTER_FAULT_MS = 20_000;

async function steadyState(cluster: HaCluster): Promise<void> {
  await cluster.waitServing(cluster.clients.filter((c) => c.n <= 4));
}

/** The 4 clients connected in the dispatcher's view, and a 5th client refused (429): the token is full. */
async function assertConverged(cluster: HaCluster, fifth: number): Promise<number> {
  const four = cluster.clients.filter((c) => c.n <= 4);
  const at = await cluster.waitConverged(four, 90_000);
  const extra = await cluster.startClient(fifth);
  try {
    await waitFor(`client ${fifth} refused by the dispatcher`, () => logLines(extra.proc).some((e) => e.msg === 'dispatcher allocation failed; retrying' && /429/.test(String(e.err))), { timeoutMs: 30_000 });
    assert.equal(await cluster.isReady(extra), false, `client ${fifth} is ready while 4 hold the token`);
    assert.ok(!logLines(extra.proc).some((e) => e.msg === 'received server id'), `client ${fifth} was allocated a fifth slot`);
  } finally {
    assert.equal(await extra.proc.stop(30_000), 0, `client ${fifth} exit code`);
  }
  return at;
}

describe('memory store', () => {
  const cluster = clusterForFile({ servers: 3, originDelayMs: 100, allowPost: true }, 4);
  const gone: RunningProcess[] = [];
  after(async () => {
    assert.deepEqual(await cluster.exitProblems(gone), [], 'processes that did not exit 0 on SIGTERM');
  });

  test('dispatcher killed for 30 s under mixed load: zero failed requests, converged once it is back', async () => {
    const load = startSteadyLoad(cluster, { rate: 50 });
    await steadyState(cluster);
    const old = cluster.dispatcher;
    old.kill('SIGKILL');
    assert.equal(await old.exited, 'SIGKILL');
    gone.push(old);
    assert.equal(await httpStatus(`${cluster.dispatcherUrl}/healthcheck`), 0, 'the dispatcher still answers');
    const base = new Map(cluster.origin.served);
    // The outage lasts a fixed time by design (it is the scenario).
    await sleep(OUTAGE_MS);
    assert.ok(cluster.clients.every((c) => (cluster.counts(base).get(c.prefix) ?? 0) > 0), 'a client served nothing during the outage');
    const backAt = Date.now();
    await cluster.startDispatcher();
    const convergedAt = await assertConverged(cluster, 5);
    await steadyState(cluster);
    const r = await load.stop();
    console.log(summaryLine('dispatcher-down-30s', r, convergedAt - backAt));
    assertFaultGoal(r, assert.ok);
    assert.equal(r.failed.length, 0, 'a request failed although nothing on the request path needs the dispatcher');
    assert.deepEqual(cluster.crashes([...gone, ...cluster.clients.filter((c) => c.n > 4).map((c) => c.proc)]), []);
  });

  test('dispatcher restarted with an empty memory store: servers re-register, clients converge', async () => {
    const load = startSteadyLoad(cluster, { rate: 50 });
    await steadyState(cluster);
    const old = cluster.dispatcher;
    const restartAt = Date.now();
    assert.equal(await old.stop(30_000), 0, `dispatcher exit code; output:\n${old.output().slice(-2000)}`);
    gone.push(old);
    await cluster.startDispatcher();
    await waitFor('every server live at the restarted dispatcher', async () => (await cluster.liveServerIds()).length === cluster.servers.length, { timeoutMs: 60_000, intervalMs: 200 });
    const convergedAt = await assertConverged(cluster, 6);
    await steadyState(cluster);
    await sleep(Math.max(0, AFTER_FAULT_MS - (Date.now() - restartAt)));
    const r = await load.stop();
    console.log(summaryLine('dispatcher-restart-empty', r, convergedAt - restartAt));
    assertFaultGoal(r, assert.ok);
    assert.equal(r.failed.length, 0, 'a request failed although nothing on the request path needs the dispatcher');
    assert.deepEqual(cluster.crashes([...gone, ...cluster.clients.filter((c) => c.n > 4).map((c) => c.proc)]), []);
  });
});

// Known before the cluster's options are: Redis comes back on the same port.
const redisPort = await freePort();

describe('redis store, two dispatcher replicas', () => {
  let redis: RedisInstance | undefined;
  before(async () => {
    redis = await startRedis(redisPort);
  });
  const cluster = clusterForFile({ servers: 3, originDelayMs: 100, allowPost: true, dispatcherReplicas: 2, dispatcherEnv: { DISPATCHER_REDIS_URL: `redis://127.0.0.1:${redisPort}` } }, 4);
  after(async () => {
    await redis?.stop();
  });
  after(async () => {
    assert.deepEqual(await cluster.exitProblems(), [], 'processes that did not exit 0 on SIGTERM');
  });

  test('Redis restarted (empty) under mixed load: zero failed requests, replicas recover, converged', async () => {
    const load = startSteadyLoad(cluster, { rate: 50 });
    await steadyState(cluster);
    const downAt = Date.now();
    await redis!.stop();
    // Both replicas notice: not ready while the store is gone, and they stay up.
    await waitFor('both replicas not ready without Redis', async () => (await Promise.all(cluster.dispatcherReplicas.map((d) => httpStatus(`http://127.0.0.1:${d.port}/readyz`)))).every((s) => s === 503), { timeoutMs: 30_000, intervalMs: 200 });
    const base = new Map(cluster.origin.served);
    await sleep(Math.max(0, 5000 - (Date.now() - downAt)));
    redis = await startRedis(redisPort);
    const backAt = Date.now();
    await waitFor('both replicas ready again', async () => (await Promise.all(cluster.dispatcherReplicas.map((d) => httpStatus(`http://127.0.0.1:${d.port}/readyz`)))).every((s) => s === 200), { timeoutMs: 60_000, intervalMs: 200 });
    await waitFor('every server live in the new Redis', async () => (await cluster.liveServerIds()).length === cluster.servers.length, { timeoutMs: 60_000, intervalMs: 200 });
    const convergedAt = await assertConverged(cluster, 5);
    assert.ok(cluster.clients.filter((c) => c.n <= 4).every((c) => (cluster.counts(base).get(c.prefix) ?? 0) > 0), 'a client served nothing while Redis was down');
    await steadyState(cluster);
    await sleep(Math.max(0, AFTER_FAULT_MS - (Date.now() - downAt)));
    const r = await load.stop();
    console.log(summaryLine('redis-restart', r, convergedAt - backAt));
    assertFaultGoal(r, assert.ok);
    assert.equal(r.failed.length, 0, 'a request failed although nothing on the request path needs the dispatcher');
    assert.deepEqual(cluster.crashes(cluster.clients.filter((c) => c.n > 4).map((c) => c.proc)), []);
  });
});
