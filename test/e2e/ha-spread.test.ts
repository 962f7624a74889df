// Issue 4 proof 1: 3 servers behind one shared URL, 4 HA clients of one token. The 4
// allocations cover all 3 servers (3 servers cannot hold 4 distinct ones) and the platform's
// requests, sent through the shared URL, are spread evenly over the 4 clients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterForFile, describeFailures } from '../support/ha-cluster.js';
import { waitFor } from '../support/wait.js';

// The balancer runs in the test process, on the path of every tunnel: on a loaded machine its
// stalls look like hung clients to the probe (300 + 600 ms), and hedged GETs would reach the
// origin twice (this test counts them exactly). The probe is as patient as it used to be here.
const cluster = clusterForFile({ servers: 3, serverEnv: { BROKER_SERVER_PROBE_DELAY_MS: '2000', BROKER_SERVER_PROBE_TIMEOUT_MS: '3000' } }, 4);

test('4 clients on one token: 4 allocations covering all 3 servers', async () => {
  const view = await waitFor('4 connected allocations and 8 tunnels at the dispatcher', async () => {
    const v = await cluster.tokenView();
    return v.allocations.filter((a) => a.connected).length === 4 && v.tunnels === 8 ? v : undefined;
  }, { timeoutMs: 30_000, intervalMs: 200 });
  const servers = new Set(view.allocations.map((a) => a.server_id));
  assert.deepEqual([...servers].sort(), ['0', '1', '2'], `allocations ${JSON.stringify(view.allocations)}`);
  // Each client connected where it was told: its log's server id matches the dispatcher's view.
  for (const c of cluster.clients) {
    const a = view.allocations.find((x) => x.client_id === c.clientId);
    assert.ok(a, `client ${c.n} has no allocation`);
    assert.equal(cluster.allocatedServer(c), a.server_id, `client ${c.n}`);
  }
  // The tunnels sit on the allocated servers: 2 per client.
  const expected = new Map<string, number>();
  for (const a of view.allocations) expected.set(a.server_id, (expected.get(a.server_id) ?? 0) + 2);
  for (const s of view.servers) assert.equal(s.tunnels, expected.get(s.server_id), `tunnels on server ${s.server_id}`);
});

test('≥ 2,000 requests through the shared URL: every client serves, max/min share ≤ 1.25', async () => {
  // Warm-up: every client has served, so every server's routing cache lists all 8 tunnels
  // (it refreshes every 2 s) before the measured run starts.
  const warm = await waitFor('every client served during the warm-up', async () => {
    const r = await cluster.burst(200, 8);
    assert.equal(r.failures.length, 0, describeFailures(r.failures));
    return cluster.clients.every((c) => (cluster.origin.served.get(c.prefix) ?? 0) >= 10);
  }, { timeoutMs: 60_000, intervalMs: 2000 });
  assert.ok(warm);
  const baseline = new Map(cluster.origin.served);
  const total = 2400;
  const run = await cluster.burst(total, 16);
  assert.equal(run.failures.length, 0, describeFailures(run.failures));
  assert.equal(run.ok, total);
  const counts = cluster.clients.map((c) => cluster.counts(baseline).get(c.prefix) ?? 0);
  assert.equal(counts.reduce((a, b) => a + b, 0), total, `origin counted ${counts.join('+')}`);
  const ratio = Math.max(...counts) / Math.min(...counts);
  console.log(`# spread over ${total} requests: ${counts.map((n, i) => `c${i + 1}=${n}`).join(' ')} max/min=${ratio.toFixed(3)}`);
  assert.ok(ratio <= 1.25, `max/min per-client share ${ratio.toFixed(3)} > 1.25 (${counts.join(', ')})`);
});
