// Fault suite, server faults (issue 6), under steady mixed GET/POST load through the shared URL
// (a round-robin balancer standing in for the Service):
//  - kill -9 of the server holding the most client connections (Kubernetes restarts it later);
//  - SIGTERM rolling restart of every server, one after another.
// Goal: zero failed GETs, zero hung requests, no duplicate POST at the origin, every failed POST
// answered with a status + x-broker-failure reason, no crash, and the dispatcher converged again.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { clusterForFile, logLines } from '../support/ha-cluster.js';
import { assertFaultGoal, describeLoadFailures, startSteadyLoad, summaryLine } from '../support/steady-load.js';
import type { RunningProcess } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

const cluster = clusterForFile({ servers: 3, originDelayMs: 100, allowPost: true }, 4);
const gone: RunningProcess[] = [];
// Registered after clusterForFile's: runs once every process was stopped (SIGTERM) — none may have crashed.
after(async () => {
  assert.deepEqual(await cluster.exitProblems(gone), [], 'processes that did not exit 0 on SIGTERM');
});

async function serverLive(id: string): Promise<void> {
  await waitFor(`server ${id} live at the dispatcher`, async () => (await cluster.liveServerIds()).includes(id), { timeoutMs: 60_000, intervalMs: 200 });
}

test('kill -9 the server holding the most connections, restarted: no lost GET, no hung request, converged', async () => {
  const load = startSteadyLoad(cluster, { rate: 50 });
  await cluster.waitServing();
  const byServer = new Map<string, number>();
  for (const c of cluster.clients) byServer.set(cluster.allocatedServer(c)!, (byServer.get(cluster.allocatedServer(c)!) ?? 0) + 1);
  const victimId = [...byServer].sort((a, b) => b[1] - a[1])[0]![0];
  const victim = cluster.servers.find((s) => s.id === victimId)!;
  const allPorts = cluster.servers.map((s) => s.port);
  const killedAt = Date.now();
  victim.proc.kill('SIGKILL');
  gone.push(victim.proc);
  // kube-proxy drops the dead pod from the endpoints once its readiness fails.
  cluster.balancer.setBackends(allPorts.filter((p) => p !== victim.port));
  assert.equal(await victim.proc.exited, 'SIGKILL');
  // Its clients re-home on the other servers and everyone converges without it.
  const rehomedAt = await cluster.waitConverged(cluster.clients);
  await cluster.waitServing();
  // The pod comes back (same id and port) and rejoins the Service once ready.
  await sleep(Math.max(0, 10_000 - (Date.now() - killedAt)));
  await cluster.startServer(victim);
  cluster.balancer.setBackends(allPorts);
  await serverLive(victimId);
  await cluster.waitConverged(cluster.clients);
  await cluster.waitServing();
  const r = await load.stop();
  // Platform requests whose own TCP connection went through the killed server die with it (a
  // connection reset the platform sees and retries); no broker can answer those. Only requests
  // already in flight at the kill qualify.
  const killAt = killedAt - load.startedAt;
  const cut = (f: { status: number; at: number }) => f.status === 0 && f.at <= killAt + 500;
  const cutCount = r.failed.filter(cut).length;
  console.log(`# kill -9 server ${victimId} (${byServer.get(victimId)} clients): ${cutCount} requests cut with its platform connections${cutCount ? `: ${describeLoadFailures(r.failed.filter(cut))}` : ''}`);
  console.log(summaryLine('server-kill-9', r, rehomedAt - killedAt));
  if (r.failed.length) console.log(`# killed at +${killAt} ms; ${describeLoadFailures(r.failed).replace(/\n/g, '\n# ')}`);
  assertFaultGoal(r, assert.ok, cut);
  assert.deepEqual(cluster.crashes(gone), []);
});

test('SIGTERM rolling restart of every server under mixed load: zero failed requests, converged', async () => {
  const load = startSteadyLoad(cluster, { rate: 50 });
  await cluster.waitServing();
  const startedAt = Date.now();
  const allPorts = cluster.servers.map((x) => x.port);
  const timeline: string[] = [];
  for (const s of cluster.servers) {
    const old = s.proc;
    const t0 = Date.now();
    // As Kubernetes does for a terminating pod: out of the endpoints while it gets SIGTERM.
    cluster.balancer.setBackends(allPorts.filter((p) => p !== s.port));
    const code = await old.stop(60_000);
    gone.push(old);
    assert.equal(code, 0, `server ${s.id} exit code after SIGTERM; output:\n${old.output().slice(-2000)}`);
    const drainLine = logLines(old).find((e) => String(e.msg).startsWith('draining'));
    const t1 = Date.now();
    await cluster.startServer(s);
    cluster.balancer.setBackends(allPorts);
    await serverLive(s.id);
    await cluster.waitConverged(cluster.clients);
    timeline.push(`server ${s.id}: ${String(drainLine?.inFlight ?? '?')} in flight, exited in ${t1 - t0} ms, converged ${Date.now() - t1} ms later`);
  }
  const convergedAt = Date.now();
  await cluster.waitServing();
  const r = await load.stop();
  console.log(`# rolling restart: ${timeline.join('; ')}`);
  console.log(summaryLine('server-rolling-sigterm', r, convergedAt - startedAt));
  if (r.failed.length) console.log(`# ${describeLoadFailures(r.failed).replace(/\n/g, '\n# ')}`);
  assertFaultGoal(r, assert.ok);
  assert.equal(r.failed.length, 0, `a drain lost requests: ${describeLoadFailures(r.failed)}`);
  assert.deepEqual(cluster.crashes(gone), []);
});
