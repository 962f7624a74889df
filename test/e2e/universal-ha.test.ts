// Universal Broker in HA mode: three client replicas serve the same two connections of a
// deployment. Each replica asks the dispatcher (through Snyk's API, with its OAuth bearer) where
// each connection's tunnels go; the platform's requests for either connection are spread over
// every replica's tunnels, and losing a replica loses no request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { HaCluster } from '../support/ha-cluster.js';
import { freePort } from '../support/ports.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { waitFor } from '../support/wait.js';
import { readyTunnels } from '../support/connection-status.js';
import { startFakeSnykApi, type FakeSnykApi, universalClientEnv } from '../support/fake-snyk-api.js';
import { metricValue, scrape } from '../support/broker-pair.js';
import type { RunningProcess } from '../support/processes.js';

const GH_TOKEN = `ghp_${randomUUID().replace(/-/g, '')}`;
const GL_TOKEN = `glpat-${randomUUID().replace(/-/g, '')}`;
const ghIdentifier = randomUUID();
const glIdentifier = randomUUID();
const cluster = new HaCluster({ servers: 3 });
let github: Origin;
let gitlab: Origin;
let api: FakeSnykApi;
const replicas: Array<{ proc: RunningProcess; url: string }> = [];

/** Ready tunnels of an identifier over every server. */
async function tunnelsOf(identifier: string): Promise<number> {
  // A server that is down has none.
  const counts = await Promise.all(cluster.servers.map((s) => readyTunnels(`http://127.0.0.1:${s.port}`, identifier)));
  return counts.reduce((a, b) => a + b, 0);
}

async function startReplica(n: number): Promise<void> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = cluster.group.broker(`ub-client-${n}`, 'client', {
    ...universalClientEnv(api, cluster.sharedUrl),
    BROKER_HA_MODE_ENABLED: 'true',
    BROKER_CLIENT_URL: url,
    PORT: String(port),
    GH_TOKEN,
    GL_TOKEN,
    INSECURE_DOWNSTREAM: 'true',
    BROKER_CLIENT_DRAIN_GRACE_MS: '10000',
  });
  replicas.push({ proc, url });
}

before(async () => {
  github = await startOrigin();
  gitlab = await startOrigin();
  await cluster.start();
  // Snyk's API forwards HA allocations to the dispatcher (our dispatcher serves /hidden/broker).
  api = await startFakeSnykApi({
    connections: [
      { name: 'gh', type: 'github', identifier: ghIdentifier, required: { github_token: '${GH_TOKEN}', github_api: `127.0.0.1:${new URL(github.url).port}` } },
      { name: 'gl', type: 'gitlab', identifier: glIdentifier, required: { gitlab_token: '${GL_TOKEN}', gitlab: `127.0.0.1:${new URL(gitlab.url).port}` } },
    ],
    dispatcherUrl: cluster.dispatcherUrl,
    dispatcherPrefix: '/hidden/broker',
  });
  for (let n = 1; n <= 3; n++) await startReplica(n);
  await waitFor('3 replicas × 2 tunnels for each connection', async () => (await tunnelsOf(ghIdentifier)) === 6 && (await tunnelsOf(glIdentifier)) === 6, { timeoutMs: 60_000, intervalMs: 200 });
});

after(async () => {
  try {
    const out = cluster.group.allOutput();
    for (const secret of [GH_TOKEN, GL_TOKEN, api.clientSecret]) assert.ok(!out.includes(secret), 'a credential is in a log line');
  } finally {
    await cluster.stop();
    await Promise.all([github.close(), gitlab.close(), api.close()]);
  }
});

test('each replica got its placement from the dispatcher through Snyk API, with its bearer, per connection', () => {
  const allocations = api.calls.filter((c) => c.method === 'POST' && /\/hidden\/brokers\/[0-9a-f]{64}\/connections\//.test(c.path));
  // 3 replicas × 2 connections, each asked once (the two tunnels of a connection share the ask).
  assert.ok(allocations.length >= 6, `allocations: ${allocations.length}`);
  assert.ok(allocations.every((c) => /^bearer /i.test(String(c.headers.authorization))));
  const hashes = new Set(allocations.map((c) => c.path.split('/')[3]));
  assert.equal(hashes.size, 2, 'one hash per connection');
  // Each connection's preflight checks Snyk's API, as Snyk's client does in HA mode.
  assert.ok(api.calls.some((c) => c.method === 'GET' && c.path === '/rest/openapi'), 'no preflight call to the API');
});

test('requests for both connections are spread over all three replicas', async () => {
  const paths = [`/broker/${ghIdentifier}/user/repos`, `/broker/${glIdentifier}/api/v4/projects`];
  const results = await Promise.all(
    Array.from({ length: 120 }, async (_, i) => {
      const r = await request(`${cluster.sharedUrl}${paths[i % 2]}`, { reset: true });
      await r.body.dump();
      return r.statusCode;
    }),
  );
  assert.deepEqual(results.filter((s) => s !== 200), []);
  for (const [name, conn] of [['gh', 'gh'], ['gl', 'gl']] as const) {
    const perReplica = await Promise.all(replicas.map(async (r) => metricValue(await scrape(`${r.url}/metrics`), 'broker_client_requests_total', { direction: 'inbound', connection: conn })));
    assert.ok(perReplica.every((n) => n > 0), `${name} requests per replica: ${perReplica.join(', ')}`);
  }
});

test('a replica stopped under load loses no request; the others carry both connections', async () => {
  let stop = false;
  const failures: string[] = [];
  let ok = 0;
  const paths = [`/broker/${ghIdentifier}/user/repos`, `/broker/${glIdentifier}/api/v4/projects`];
  const workers = Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      const r = await request(`${cluster.sharedUrl}${paths[(i + w) % 2]}`, { reset: true });
      const body = await r.body.text();
      if (r.statusCode === 200) ok++;
      else failures.push(`${r.statusCode} ${String(r.headers['x-broker-failure'])} ${body.slice(0, 100)}`);
    }
  });
  // Each server learns from the dispatcher (every 2 s) which peers hold tunnels of a token: only
  // then can the one holding the stopped replica's tunnels hand its requests to the others.
  await waitFor('every server forwards to its peers', async () => (await Promise.all(cluster.servers.map((sv) => cluster.serverMetric(sv, 'broker_server_peer_forwards_total{')))).every((n) => n > 0), { timeoutMs: 30_000, intervalMs: 200 });
  const code = await replicas[0]!.proc.stop();
  assert.equal(code, 0);
  await waitFor('2 replicas left for each connection', async () => (await tunnelsOf(ghIdentifier)) === 4 && (await tunnelsOf(glIdentifier)) === 4, { timeoutMs: 30_000, intervalMs: 200 });
  const after = ok;
  await waitFor('load continues', () => ok > after + 40, { timeoutMs: 20_000 });
  stop = true;
  await Promise.all(workers);
  assert.deepEqual(failures, []);
});

test('at most 4 replicas per connection: for each connection a 5th waits without its tunnels and takes the slot a stopped one gives back', async () => {
  // Two replicas are left from the test above: three more make five.
  for (let n = 4; n <= 6; n++) await startReplica(n);
  await waitFor('4 replicas × 2 tunnels for each connection', async () => (await tunnelsOf(ghIdentifier)) === 8 && (await tunnelsOf(glIdentifier)) === 8, { timeoutMs: 60_000, intervalMs: 200 });
  const live = replicas.filter((r) => r.proc.child.exitCode === null);
  /** Open tunnels of each connection at a replica, by its healthcheck. */
  const openOf = async (r: { url: string }): Promise<Record<string, number>> => {
    try {
      const res = await request(`${r.url}/healthcheck`, { reset: true });
      const body = (await res.body.json()) as Array<{ ok: boolean; friendlyName: string }>;
      const out: Record<string, number> = { gh: 0, gl: 0 };
      for (const e of body) if (e.ok) out[e.friendlyName] = (out[e.friendlyName] ?? 0) + 1;
      return out;
    } catch {
      return { gh: -1, gl: -1 };
    }
  };
  let lastSeen = '';
  // Each connection is placed on its own: for each, four replicas hold its two tunnels and the
  // fifth waits (the dispatcher's max-clients answer, through Snyk's API) with none.
  const waiting = await waitFor('one replica waiting per connection', async () => {
    const open = await Promise.all(live.map(openOf));
    lastSeen = JSON.stringify(open);
    const byConn = (name: string) => open.map((o) => o[name]);
    const placed = (name: string) => byConn(name).filter((n) => n === 2).length === 4 && byConn(name).filter((n) => n === 0).length === 1;
    return placed('gh') && placed('gl') ? { gh: live[byConn('gh').indexOf(0)]!, gl: live[byConn('gl').indexOf(0)]! } : undefined;
  }, { timeoutMs: 30_000, intervalMs: 200 }).catch((err: Error) => {
    throw new Error(`${err.message}; open tunnels per replica: ${lastSeen}`);
  });
  assert.ok(api.calls.some((c) => c.method === 'POST' && c.path.includes('/connections/') && c.path.startsWith('/hidden/brokers/')), 'allocations went through the API');
  // A replica holding both connections gives both slots back when it stops.
  const both = live.find((r) => r !== waiting.gh && r !== waiting.gl)!;
  assert.equal(await both.proc.stop(), 0);
  await waitFor('the waiting replicas took the free slots', async () => (await openOf(waiting.gh)).gh === 2 && (await openOf(waiting.gl)).gl === 2, { timeoutMs: 60_000, intervalMs: 200 });
  await waitFor('still 4 replicas × 2 tunnels for each connection', async () => (await tunnelsOf(ghIdentifier)) === 8 && (await tunnelsOf(glIdentifier)) === 8, { timeoutMs: 30_000, intervalMs: 200 });
});
