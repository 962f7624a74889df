// Issue 6, faults: client churn for one token. Six clients → exactly four allocated; when one
// leaves (kill -9 or SIGTERM) a waiting one takes over; then 100 connect/disconnect cycles of a
// light in-process HA client (real dispatcher allocation API + real tunnels to the allocated
// server + DELETE, or just a dropped tunnel as after kill -9) leave no allocation, tunnel or
// in-flight relay behind: the dispatcher's /internal view, its metrics and the servers' metrics
// return to their baseline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { setTimeout as sleep } from 'node:timers/promises';
import { clusterForFile, type ClientNode, type HaCluster } from '../support/ha-cluster.js';
import { FakeTunnelClient } from '../support/fake-tunnel-client.js';
import { assertFaultGoal, describeLoadFailures, startSteadyLoad, summaryLine } from '../support/steady-load.js';
import { waitFor } from '../support/wait.js';
import { hashToken } from '../../src/protocol/index.js';
import { ALLOCATION_API_VERSION } from '../../src/client/allocation.js';
import { metricValue, scrape } from '../support/broker-pair.js';

const cluster = clusterForFile({ servers: 2, allowPost: true, originDelayMs: 50 }, 4);

async function readyClients(clients: readonly ClientNode[]): Promise<ClientNode[]> {
  const ready = await Promise.all(clients.map((c) => cluster.isReady(c)));
  return clients.filter((_, i) => ready[i]);
}

/** What must return to baseline: the dispatcher's view and metrics, and every server's gauges. */
async function systemState(c: HaCluster, token: string): Promise<Record<string, number>> {
  const hashed = hashToken(token);
  const r = await request(`${c.dispatcherUrl}/internal/tokens/${hashed}/connections`, { headersTimeout: 3000, bodyTimeout: 3000, reset: true, headers: c.internalHeaders });
  const doc = r.statusCode === 200 ? ((await r.body.json()) as { data: { attributes: { servers: Array<{ connections: Array<{ tunnels: number }> }>; allocations: unknown[] } } }) : (await r.body.dump(), undefined);
  const attrs = doc?.data.attributes;
  const dmetrics = await scrape(`${c.dispatcherUrl}/metrics`);
  const label = { token_hash: hashed.slice(0, 8) };
  const state: Record<string, number> = {
    'dispatcher allocations': attrs?.allocations.length ?? 0,
    'dispatcher tunnels': attrs?.servers.reduce((a, s) => a + s.connections.reduce((b, x) => b + x.tunnels, 0), 0) ?? 0,
    'dispatcher metric token_allocations': metricValue(dmetrics, 'broker_dispatcher_token_allocations', label),
    'dispatcher metric token_connections': metricValue(dmetrics, 'broker_dispatcher_token_connections', label),
  };
  for (const s of c.servers) {
    const m = await scrape(`http://127.0.0.1:${s.port}/metrics`);
    state[`server ${s.id} connections`] = metricValue(m, 'broker_server_connections', { token_hash: hashed });
    state[`server ${s.id} relays_in_flight`] = metricValue(m, 'broker_server_relays_in_flight');
  }
  return state;
}

/**
 * A light HA client: what `broker client` does in HA mode, without the process — allocation
 * (POST, honouring 429 Retry-After), two tunnels to the allocated server (server_id query), and
 * on leave either DELETE + close (SIGTERM) or just a dropped tunnel (kill -9: the lease expires).
 */
class LightHaClient {
  tunnels: FakeTunnelClient[] = [];
  serverId = '';
  constructor(
    readonly c: HaCluster,
    readonly token: string,
    readonly clientId: string,
  ) {}

  get allocationUrl(): string {
    return `${this.c.dispatcherUrl}/hidden/broker/${hashToken(this.token)}/connections/${encodeURIComponent(this.clientId)}?version=${encodeURIComponent(ALLOCATION_API_VERSION).replace(/~/g, '%7E')}`;
  }

  async allocate(deadlineMs = 60_000): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      const r = await request(this.allocationUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/vnd.api+json' },
        body: JSON.stringify({ data: { attributes: { deployment_location: 'light-ha-client', broker_token_first_char: this.token.charAt(0) } } }),
        reset: true,
        headersTimeout: 5000,
        bodyTimeout: 5000,
      });
      const text = await r.body.text();
      if (r.statusCode === 200 || r.statusCode === 201) {
        const attrs = (JSON.parse(text) as { data: { attributes: { server_id: string; server_url?: string } } }).data.attributes;
        this.serverId = String(attrs.server_id);
        const base = attrs.server_url ?? this.c.sharedUrl;
        for (const role of ['primary', 'secondary']) {
          this.tunnels.push(new FakeTunnelClient(base, this.token, { clientId: this.clientId, role, query: `server_id=${encodeURIComponent(this.serverId)}` }));
        }
        await Promise.all(this.tunnels.map((t) => t.opened));
        return;
      }
      if (r.statusCode !== 429 && r.statusCode !== 503) throw new Error(`allocation answered ${r.statusCode}: ${text.slice(0, 200)}`);
      if (Date.now() > deadline) throw new Error(`no allocation within ${deadlineMs} ms: ${r.statusCode} ${text.slice(0, 200)}`);
      await sleep(Math.min(Number(r.headers['retry-after'] ?? 1) * 1000, 2000) * (0.5 + Math.random() / 2));
    }
  }

  async leave(how: 'graceful' | 'killed'): Promise<void> {
    if (how === 'graceful') {
      const r = await request(this.allocationUrl, { method: 'DELETE', reset: true, headersTimeout: 5000, bodyTimeout: 5000 });
      await r.body.dump();
    }
    for (const t of this.tunnels) t.close();
    await Promise.all(this.tunnels.map((t) => t.closed));
  }
}

test('six clients for one token under load: exactly four allocated; kill -9 and SIGTERM of allocated ones hand their slots to the waiting ones', async () => {
  const load = startSteadyLoad(cluster, { rate: 20 });
  const first = cluster.clients.slice(0, 4);
  await cluster.waitReady(first);
  const waiting = [await cluster.startClient(5), await cluster.startClient(6)];
  // The waiting clients asked and were refused: the dispatcher says so in their logs.
  await Promise.all(waiting.map((c) => c.proc.waitForOutput(/MAX_CLIENTS_PER_TOKEN|429/, 60_000)));
  await waitFor('four allocations', async () => (await cluster.tokenView()).allocations.length === 4, { timeoutMs: 30_000, intervalMs: 200 });
  assert.equal((await readyClients(cluster.clients)).length, 4, 'exactly four clients are ready');
  assert.deepEqual(await readyClients(waiting), [], 'a waiting client is ready');

  // kill -9: the slot frees when the lease of the dead tunnels expires; a waiting client takes it.
  const killed = first[0]!;
  killed.proc.kill('SIGKILL');
  assert.equal(await killed.proc.exited, 'SIGKILL');
  const tookOver = await waitFor('a waiting client ready after kill -9', async () => (await readyClients(waiting))[0], { timeoutMs: 60_000, intervalMs: 200 });
  // SIGTERM: the client releases its slot (DELETE) and the other waiting client takes it.
  const stopped = first[1]!;
  assert.equal(await stopped.proc.stop(30_000), 0);
  const other = waiting.find((c) => c !== tookOver)!;
  await cluster.waitReady([other], 60_000);
  const live = cluster.clients.filter((c) => c !== killed && c !== stopped);
  await waitFor('four allocations, all connected, for the four live clients', async () => {
    const v = await cluster.tokenView();
    return v.allocations.length === 4 && v.allocations.every((a) => a.connected) && live.every((c) => v.allocations.some((a) => a.client_id === c.clientId));
  }, { timeoutMs: 60_000, intervalMs: 200 });
  assert.equal((await readyClients(live)).length, 4);
  const r = await load.stop();
  console.log(summaryLine('client-churn-6-for-4', r, undefined));
  if (r.failed.length) console.log(`# ${describeLoadFailures(r.failed).replace(/\n/g, '\n# ')}`);
  assertFaultGoal(r, (ok, message) => assert.ok(ok, message));
});

test('100 connect/disconnect cycles (light HA clients, half DELETE, half dropped like kill -9) and real client processes stopped with SIGTERM and kill -9: no allocation leak, state back to baseline', async () => {
  const token = crypto.randomUUID();
  const baseline = await systemState(cluster, token);
  assert.ok(Object.values(baseline).every((v) => v === 0), `baseline not empty: ${JSON.stringify(baseline)}`);
  const cycles = 100;
  let killedCycles = 0;
  const started = Date.now();
  // Two light clients churn side by side (ids never reused: a restarted pod gets a new random id).
  const lane = async (laneNo: number) => {
    for (let i = laneNo; i < cycles; i += 2) {
      const client = new LightHaClient(cluster, token, `light-${laneNo}-${i}`);
      await client.allocate();
      await waitFor(`cycle ${i} connected at the dispatcher`, async () => {
        const v = await request(`${cluster.dispatcherUrl}/internal/tokens/${hashToken(token)}/connections`, { reset: true, headers: cluster.internalHeaders });
        const doc = (await v.body.json()) as { data: { attributes: { allocations: Array<{ client_id: string; connected: boolean }> } } };
        return doc.data.attributes.allocations.some((a) => a.client_id === client.clientId && a.connected);
      }, { timeoutMs: 30_000, intervalMs: 50 });
      if (i === 0) {
        // The gauges watched below do see a light client (else "back to baseline" proves nothing).
        // (The dispatcher caches its per-token gauges for a second.)
        let during: Record<string, number> = {};
        await waitFor('the gauges to show the first light client', async () => {
          during = await systemState(cluster, token);
          return during['dispatcher metric token_allocations']! >= 1 && during['dispatcher metric token_connections']! >= 2 && cluster.servers.reduce((a, s) => a + during[`server ${s.id} connections`]!, 0) >= 2;
        }, { timeoutMs: 10_000, intervalMs: 250 }).catch((err: Error) => {
          throw new Error(`${err.message}: gauges blind? ${JSON.stringify(during)}`);
        });
      }
      const how = i % 4 < 2 ? 'graceful' : 'killed';
      if (how === 'killed') killedCycles++;
      await client.leave(how);
    }
  };
  await Promise.all([lane(0), lane(1)]);
  const cyclesMs = Date.now() - started;
  // Killed ones hold their slot until their lease expires: wait for the baseline with a deadline.
  let last: Record<string, number> = {};
  await waitFor('the state back to baseline after the cycles', async () => {
    last = await systemState(cluster, token);
    return Object.entries(last).every(([k, v]) => v === baseline[k]);
  }, { timeoutMs: 60_000, intervalMs: 500 }).catch((err: Error) => {
    throw new Error(`${err.message}; last state ${JSON.stringify(last)}`);
  });
  console.log(`# churn: ${cycles} light cycles (${killedCycles} dropped like kill -9) in ${cyclesMs} ms; state back to baseline ${JSON.stringify(last)}`);

  // The real program too: the main token's remaining clients leave, two with SIGTERM, the rest with kill -9.
  const mainBaselineKeys = await systemState(cluster, cluster.token);
  assert.ok(mainBaselineKeys['dispatcher allocations']! > 0);
  const alive = cluster.clients.filter((c) => c.proc.child.exitCode === null && c.proc.child.signalCode === null);
  for (const [i, c] of alive.entries()) {
    if (i < 2) assert.equal(await c.proc.stop(30_000), 0);
    else {
      c.proc.kill('SIGKILL');
      await c.proc.exited;
    }
  }
  await waitFor('the main token back to empty after its clients left', async () => {
    last = await systemState(cluster, cluster.token);
    return Object.values(last).every((v) => v === 0);
  }, { timeoutMs: 60_000, intervalMs: 500 }).catch((err: Error) => {
    throw new Error(`${err.message}; last state ${JSON.stringify(last)}`);
  });
});
