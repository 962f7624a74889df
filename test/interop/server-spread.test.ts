import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { startSnykBroker } from '../support/snyk-broker.js';

/**
 * Four real snyk-broker clients (8 tunnels) on one token against one of our servers:
 * requests spread over every tunnel, and losing a client under load fails no GET.
 */
const token = randomUUID();
const group = new ProcessGroup();
const agent = new Agent({ connections: 64, keepAliveTimeout: 30_000 });
let origin: Origin;
let serverUrl: string;
const clients: RunningProcess[] = [];

async function readyTunnels(): Promise<string[]> {
  const res = await request(`${serverUrl}/connection-status/${token}`, { dispatcher: agent });
  if (res.statusCode !== 200) {
    await res.body.dump();
    return [];
  }
  const body = (await res.body.json()) as { clients: Array<{ state: string; connection: string }> };
  return body.clients.filter((c) => c.state === 'ready').map((c) => c.connection);
}

interface LoadResult {
  ok: number;
  failures: string[];
  perConnection: Map<string, number>;
}

/** Closed-loop load: `concurrency` workers issue GETs until `total` are done or `until()` says stop. */
async function load(total: number, concurrency: number, onProgress?: (done: number) => void): Promise<LoadResult> {
  const result: LoadResult = { ok: 0, failures: [], perConnection: new Map() };
  let issued = 0;
  let done = 0;
  async function worker(): Promise<void> {
    while (issued < total) {
      const n = issued++;
      try {
        const res = await request(`${serverUrl}/broker/${token}/echo/load-${n}`, { dispatcher: agent });
        const text = await res.body.text();
        const conn = String(res.headers['x-broker-connection'] ?? 'none');
        if (res.statusCode === 200 && text.includes(`/echo/load-${n}`)) {
          result.ok++;
          result.perConnection.set(conn, (result.perConnection.get(conn) ?? 0) + 1);
        } else {
          result.failures.push(`#${n}: ${res.statusCode} ${String(res.headers['x-broker-failure'] ?? '')} ${text.slice(0, 200)}`);
        }
      } catch (err) {
        result.failures.push(`#${n}: ${(err as Error).message}`);
      }
      onProgress?.(++done);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return result;
}

before(async () => {
  origin = await startOrigin();
  const dir = await mkdtemp(join(tmpdir(), 'server-spread-'));
  const clientAccept = join(dir, 'client-accept.json');
  await writeFile(clientAccept, JSON.stringify({ private: [{ method: 'GET', path: '/*', origin: '${ORIGIN_URL}' }], public: [] }));
  const port = await freePort();
  serverUrl = `http://127.0.0.1:${port}`;
  const server = group.broker('server', 'server', { PORT: String(port), LOG_LEVEL: 'info' });
  await server.waitForOutput('broker server listening');
  for (let i = 0; i < 4; i++) {
    const env = {
      BROKER_TOKEN: token,
      BROKER_SERVER_URL: serverUrl,
      PORT: String(await freePort()),
      ACCEPT: clientAccept,
      PREFLIGHT_CHECKS_ENABLED: 'false',
      ORIGIN_URL: origin.url,
    };
    clients.push(await startSnykBroker(group, `snyk-client-${i}`, 'client', env));
  }
  await waitFor('8 tunnels (4 clients × primary/secondary)', async () => (await readyTunnels()).length === 8, { timeoutMs: 90_000 });
});

after(async () => {
  await group.stopAll();
  await agent.close();
  await origin?.close();
});

// The pool is load-aware (fewest in flight wins, within a slack of 1), so the tunnels of a
// client process the machine schedules less often serve fewer: the bound is on each tunnel's
// share of the mean, which a "first connection wins" or per-client (not per-tunnel) spread breaks.
test('8,000 requests spread over all 8 tunnels; each serves within 25% of the mean (1,000)', async (t) => {
  const tunnels = await readyTunnels();
  const result = await load(8000, 32);
  assert.deepEqual(result.failures.slice(0, 5), [], `${result.failures.length} failures`);
  assert.equal(result.ok, 8000);
  const counts = tunnels.map((t) => result.perConnection.get(t) ?? 0);
  assert.equal(result.perConnection.size, 8, `connections seen: ${[...result.perConnection.keys()].join(', ')}`);
  t.diagnostic(`per tunnel: ${counts.join(', ')}`);
  const mean = 8000 / tunnels.length;
  for (const [i, n] of counts.entries()) {
    assert.ok(n >= 0.75 * mean && n <= 1.25 * mean, `tunnel ${tunnels[i]} served ${n} (mean ${mean}): ${counts.join(', ')}`);
  }
  // The server's own per-connection counter agrees with the headers.
  const metrics = await (await request(`${serverUrl}/metrics`, { dispatcher: agent })).body.text();
  for (const t of tunnels) assert.match(metrics, new RegExp(`broker_server_relayed_requests_total\\{connection="${t}"\\} \\d+`));
  assert.ok(!metrics.includes(token), 'no token in metrics');
});

test('kill -9 one client under steady load: zero failed GET requests', async (t) => {
  const victim = clients[1]!;
  let killed = false;
  const result = await load(3000, 16, (done) => {
    if (!killed && done >= 600) {
      killed = true;
      victim.kill('SIGKILL');
    }
  });
  await victim.exited;
  assert.ok(killed);
  const metrics = await (await request(`${serverUrl}/metrics`, { dispatcher: agent })).body.text();
  t.diagnostic(metrics.split('\n').filter((l) => l.startsWith('broker_server_relay_retries_total')).join('; ') || 'no retries were needed');
  assert.deepEqual(result.failures, [], `${result.failures.length} failed requests`);
  assert.equal(result.ok, 3000);
  await waitFor('the dead client gone from the pool', async () => (await readyTunnels()).length === 6, { timeoutMs: 30_000 });
  assert.ok(!group.allOutput().includes(token), 'token leaked into a log');
});
