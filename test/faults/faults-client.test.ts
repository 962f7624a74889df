// Fault suite, client faults (issue 6), under steady mixed GET/POST load through the shared URL:
//  - kill -9 of a client (then started again, as Kubernetes restarts the pod);
//  - SIGSTOP of a client for 40 s (a hung peer, not a dead one), then SIGCONT.
// Goal: zero failed GETs, zero hung requests, no duplicate POST at the origin, every failed POST
// answered with a status + x-broker-failure reason, no crash, and the dispatcher converged again.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { clusterForFile, logLines } from '../support/ha-cluster.js';
import { assertFaultGoal, describeLoadFailures, startSteadyLoad, summaryLine } from '../support/steady-load.js';
import type { RunningProcess } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

const STOP_MS = 40_000;
// The servers' heartbeat: a client that answers no ping for 10 + 10 s is dead to them, well inside
// the 40 s stop (with the defaults, 25 + 20 s, it would outlast the stop).
const cluster = clusterForFile({ servers: 3, originDelayMs: 100, allowPost: true, serverEnv: { SOCKET_PING_INTERVAL: '10000', SOCKET_PING_TIMEOUT: '10000' } }, 4);
const gone: RunningProcess[] = [];
// Registered after clusterForFile's: runs once every process was stopped (SIGTERM) — none may have crashed.
after(async () => {
  assert.deepEqual(await cluster.exitProblems(gone), [], 'processes that did not exit 0 on SIGTERM');
});

test('kill -9 a client under mixed load, restarted: no lost GET, no hung request, converged', async () => {
  const load = startSteadyLoad(cluster, { rate: 50 });
  await cluster.waitServing();
  const victim = cluster.client(2);
  const killedAt = Date.now();
  victim.proc.kill('SIGKILL');
  assert.equal(await victim.proc.exited, 'SIGKILL');
  gone.push(victim.proc);
  // The survivors carry the load alone for a while before the pod comes back.
  const base = new Map(cluster.origin.served);
  await waitFor('clients 1, 3, 4 serving after the kill', () => [1, 3, 4].every((n) => (cluster.counts(base).get(`c${n}`) ?? 0) > 20), { timeoutMs: 60_000, intervalMs: 100 });
  // A pod restart takes a few seconds; the survivors keep the load meanwhile.
  await sleep(Math.max(0, 5000 - (Date.now() - killedAt)));
  cluster.restartClient(victim);
  const convergedAt = await cluster.waitConverged(cluster.clients);
  await cluster.waitServing();
  // And the load runs on for a while after convergence (at least 20 s in all since the kill).
  await sleep(Math.max(0, 20_000 - (Date.now() - killedAt)));
  const r = await load.stop();
  console.log(summaryLine('client-kill-9', r, convergedAt - killedAt));
  if (r.failed.length) console.log(`# ${describeLoadFailures(r.failed).replace(/\n/g, '\n# ')}`);
  const lostGets = r.failed.filter((f) => f.method === 'GET').map((f) => f.requestId ?? '');
  for (const line of cluster.trace(lostGets)) console.log(`# ${line}`);
  assertFaultGoal(r, assert.ok);
  assert.deepEqual(cluster.crashes(gone), []);
});

test('SIGSTOP a client for 40 s then SIGCONT: its tunnels are declared dead, others serve, it recovers', async () => {
  const load = startSteadyLoad(cluster, { rate: 50 });
  await cluster.waitServing();
  const victim = cluster.client(3);
  const linesBefore = logLines(victim.proc).length;
  const stoppedAt = Date.now();
  victim.proc.kill('SIGSTOP');
  try {
    // The servers' heartbeat finds the hung client's tunnels dead: the dispatcher hears it.
    const deadAt = await waitFor('the stopped client reported disconnected', async () => {
      const a = (await cluster.tokenView()).allocations.find((x) => x.client_id === victim.clientId);
      return !a || !a.connected ? Date.now() : 0;
    }, { timeoutMs: STOP_MS, intervalMs: 250 });
    const base = new Map(cluster.origin.served);
    await waitFor('the other clients serving while it is stopped', () => [1, 2, 4].every((n) => (cluster.counts(base).get(`c${n}`) ?? 0) > 10), { timeoutMs: STOP_MS, intervalMs: 100 });
    // The stop lasts a fixed time by design (it is the scenario).
    await sleep(Math.max(0, STOP_MS - (Date.now() - stoppedAt)));
    console.log(`# SIGSTOP: tunnels of the stopped client declared dead after ${deadAt - stoppedAt} ms`);
  } finally {
    victim.proc.kill('SIGCONT');
  }
  const contAt = Date.now();
  const convergedAt = await cluster.waitConverged(cluster.clients);
  const base = new Map(cluster.origin.served);
  await waitFor('the resumed client serving again', () => (cluster.counts(base).get(victim.prefix) ?? 0) > 10, { timeoutMs: 60_000, intervalMs: 100 });
  const r = await load.stop();
  const after = logLines(victim.proc).slice(linesBefore);
  console.log(`# SIGCONT: client 3 logged ${after.filter((e) => e.msg === 'broker client is connecting to broker server').length} reconnects, ${after.filter((e) => e.msg === 'received server id').length} re-allocations`);
  console.log(summaryLine('client-sigstop-40s', r, convergedAt - contAt));
  if (r.failed.length) console.log(`# ${describeLoadFailures(r.failed).replace(/\n/g, '\n# ')}`);
  assertFaultGoal(r, assert.ok);
  assert.deepEqual(cluster.crashes(gone), []);
});
