// Issue 6, faults: leak soak. 10,000 mixed GET/POST requests through the HA system while one
// client stays and another restarts every 2 s (alternately SIGTERM and kill -9). Afterwards the
// server's and the long-lived client's heap (from /metrics, right after a full gc asked through
// the inspector; minimum of several samples) has
// not grown beyond 20% over the warmed-up baseline, and the leak gauges (relays in flight, ready
// tunnels, the dispatcher's allocations, open file descriptors, active handles/resources) are
// back to their baseline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { once } from 'node:events';
import { WebSocket } from 'ws';
import type { RunningProcess } from '../support/processes.js';
import { clusterForFile, type ClientNode } from '../support/ha-cluster.js';
import { assertFaultGoal, describeLoadFailures, startSteadyLoad, summaryLine } from '../support/steady-load.js';
import { waitFor } from '../support/wait.js';
import { hashToken } from '../../src/protocol/index.js';
import { metricValue, scrape } from '../support/broker-pair.js';

// Both started with the inspector on a random port: the test asks them for a full gc before sampling.
const INSPECT = { NODE_OPTIONS: '--inspect=127.0.0.1:0' };
const cluster = clusterForFile({ servers: 1, allowPost: true, serverEnv: INSPECT, clientEnv: INSPECT }, 2);
const TOTAL = Number(process.env.SOAK_REQUESTS ?? 10_000);
const RATE = 125;
const IDLE_MS = 5_000;

/**
 * Asks a process started with `--inspect=127.0.0.1:0` for a full garbage collection through
 * Node's own inspector (HeapProfiler.collectGarbage), so heap samples measure live data only.
 */
async function collectGarbage(proc: RunningProcess): Promise<void> {
  const url = [...proc.output().matchAll(/ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/g)].at(-1)?.[0];
  assert.ok(url, `${proc.name} printed no inspector URL`);
  const ws = new WebSocket(url);
  await once(ws, 'open');
  try {
    for (let id = 1; id <= 2; id++) {
      const done = new Promise<void>((resolve) => ws.on('message', (d) => (JSON.parse(d.toString()) as { id?: number }).id === id && resolve()));
      ws.send(JSON.stringify({ id, method: 'HeapProfiler.collectGarbage' }));
      await done;
    }
  } finally {
    ws.close();
  }
}

interface Sample {
  external: number;
  heapUsed: number;
  rss: number;
  fds: number;
  handles: number;
  resources: number;
}

async function sample(url: string, prefix: string): Promise<Sample> {
  const m = await scrape(url);
  return {
    external: metricValue(m, `${prefix}_nodejs_external_memory_bytes`),
    heapUsed: metricValue(m, `${prefix}_nodejs_heap_size_used_bytes`),
    rss: metricValue(m, `${prefix}_process_resident_memory_bytes`),
    fds: metricValue(m, `${prefix}_process_open_fds`),
    handles: metricValue(m, `${prefix}_nodejs_active_handles_total`),
    resources: metricValue(m, `${prefix}_nodejs_active_resources_total`),
  };
}

/** Minimum of `n` idle samples, 1 s apart, each right after a full gc. */
async function idleMinimum(proc: RunningProcess, url: string, prefix: string, n = 4): Promise<Sample> {
  let min: Sample | undefined;
  for (let i = 0; i < n; i++) {
    if (i) await sleep(1000);
    await collectGarbage(proc);
    const s = await sample(url, prefix);
    min = min ? (Object.fromEntries(Object.entries(min).map(([k, v]) => [k, Math.min(v, s[k as keyof Sample])])) as unknown as Sample) : s;
  }
  return min!;
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

test(`${TOTAL} requests while a client restarts every 2 s: no heap growth beyond 20% on server and long-lived client, leak gauges back to baseline`, async () => {
  const server = cluster.servers[0]!;
  const serverMetrics = `http://127.0.0.1:${server.port}/metrics`;
  const [stay, churn] = cluster.clients as [ClientNode, ClientNode];
  const clientMetrics = `http://127.0.0.1:${stay.port}/metrics`;
  const gauges = async () => {
    const m = await scrape(serverMetrics);
    const cm = await scrape(clientMetrics);
    const view = await cluster.tokenView();
    return {
      inFlight: metricValue(m, 'broker_server_relays_in_flight'),
      clientInFlight: metricValue(cm, 'broker_client_relays_in_flight'),
      connections: metricValue(m, 'broker_server_connections', { token_hash: hashToken(cluster.token) }),
      allocations: view.allocations.length,
      tunnels: view.tunnels,
    };
  };

  // Warm up (JIT, pools, caches), then take the idle baseline (after a full gc).
  const warm = startSteadyLoad(cluster, { rate: RATE, path: 'warmup' });
  await waitFor('warm-up requests', () => warm.sent >= 1500, { timeoutMs: 120_000, intervalMs: 200 });
  const warmReport = await warm.stop();
  assert.equal(warmReport.failed.length, 0, `warm-up failures: ${describeLoadFailures(warmReport.failed)}`);
  // Let the last answers and closes settle.
  await sleep(IDLE_MS);
  const baseGauges = await gauges();
  assert.deepEqual(baseGauges, { inFlight: 0, clientInFlight: 0, connections: 4, allocations: 2, tunnels: 4 });
  const serverBefore = await idleMinimum(server.proc, serverMetrics, 'broker_server');
  const clientBefore = await idleMinimum(stay.proc, clientMetrics, 'broker_client');

  // The soak: steady load; the second client restarts every 2 s, alternately SIGTERM and kill -9.
  const load = startSteadyLoad(cluster, { rate: RATE, path: 'soak' });
  let restarts = 0;
  let stop = false;
  const churner = (async () => {
    while (!stop) {
      await sleep(2000);
      if (stop) break;
      if (restarts % 2 === 0) await churn.proc.stop(30_000);
      else {
        churn.proc.kill('SIGKILL');
        await churn.proc.exited;
      }
      restarts++;
      cluster.restartClient(churn);
    }
  })();
  await waitFor(`${TOTAL} requests sent`, () => load.sent >= TOTAL, { timeoutMs: (TOTAL / RATE) * 1000 * 3 + 60_000, intervalMs: 500 });
  stop = true;
  await churner;
  const r = await load.stop();
  await cluster.waitReady([churn], 60_000);
  await waitFor('gauges back to baseline', async () => JSON.stringify(await gauges()) === JSON.stringify(baseGauges), { timeoutMs: 60_000, intervalMs: 500 }).catch(async (err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(await gauges())} vs ${JSON.stringify(baseGauges)}`);
  });
  // Keep-alive sockets of the answer uploads close after 60 s idle (egress keepAliveTimeout):
  // sockets and handles must come back, with a deadline; then the same idle time as the baseline.
  const loadEnded = Date.now();
  const settled = async (url: string, prefix: string, base: Sample) => {
    const s = await sample(url, prefix);
    return s.fds <= base.fds + 10 && s.handles <= base.handles + 10 && s.resources <= base.resources + 10;
  };
  await waitFor('server and client sockets and handles back to baseline', async () => (await settled(serverMetrics, 'broker_server', serverBefore)) && (await settled(clientMetrics, 'broker_client', clientBefore)), { timeoutMs: 120_000, intervalMs: 1000 }).catch(async (err: Error) => {
    throw new Error(`${err.message}: server ${JSON.stringify(await sample(serverMetrics, 'broker_server'))} vs ${JSON.stringify(serverBefore)}; client ${JSON.stringify(await sample(clientMetrics, 'broker_client'))} vs ${JSON.stringify(clientBefore)}`);
  });
  const socketsBackMs = Date.now() - loadEnded;
  await sleep(Math.max(0, IDLE_MS - socketsBackMs));
  const serverAfter = await idleMinimum(server.proc, serverMetrics, 'broker_server');
  const clientAfter = await idleMinimum(stay.proc, clientMetrics, 'broker_client');
  const line = (name: string, b: Sample, a: Sample) =>
    `${name}: heapUsed ${mb(b.heapUsed)} → ${mb(a.heapUsed)} (${(((a.heapUsed - b.heapUsed) / b.heapUsed) * 100).toFixed(1)}%), rss ${mb(b.rss)} → ${mb(a.rss)}, external ${mb(b.external)} → ${mb(a.external)}, fds ${b.fds} → ${a.fds}, handles ${b.handles} → ${a.handles}, resources ${b.resources} → ${a.resources}`;
  console.log(`# soak: ${summaryLine('soak-client-restart-every-2s', r, undefined)} restarts=${restarts} socketsBackMs=${socketsBackMs}`);
  if (r.failed.length) console.log(`# ${describeLoadFailures(r.failed).replace(/\n/g, '\n# ')}`);
  console.log(`# ${line('server', serverBefore, serverAfter)}`);
  console.log(`# ${line('long-lived client', clientBefore, clientAfter)}`);
  assertFaultGoal(r, (ok, message) => assert.ok(ok, message));
  assert.ok(restarts >= 10, `only ${restarts} restarts`);
  for (const [name, b, a] of [['server', serverBefore, serverAfter], ['long-lived client', clientBefore, clientAfter]] as const) {
    assert.ok(a.heapUsed <= b.heapUsed * 1.2, `${name} heap grew beyond 20%: ${line(name, b, a)}`);
    // Sockets and timers: a few keep-alive sockets may differ, a leak per request or per restart would not be a few.
    assert.ok(a.fds <= b.fds + 10, `${name} open fds grew: ${line(name, b, a)}`);
    assert.ok(a.handles <= b.handles + 10, `${name} active handles grew: ${line(name, b, a)}`);
    assert.ok(a.resources <= b.resources + 10, `${name} active resources grew: ${line(name, b, a)}`);
  }
});
