// Two `broker dispatcher` processes sharing one real redis-server behave as one dispatcher.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startRedis, type RedisInstance } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { FAILURES } from '../../src/protocol/failures.js';

const V = 'version=2022-12-02%7Eexperimental';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('two dispatcher replicas on one Redis', () => {
  const group = new ProcessGroup();
  let redis: RedisInstance;
  const replicas: Array<{ proc: RunningProcess; url: string }> = [];

  before(async () => {
    redis = await startRedis();
    for (const name of ['dispatcher-a', 'dispatcher-b']) {
      const port = await freePort();
      const proc = group.broker(name, 'dispatcher', { PORT: String(port), DISPATCHER_REDIS_URL: redis.url, SERVER_PROBE_INTERVAL_MS: '0', LOG_LEVEL: 'info' });
      replicas.push({ proc, url: `http://127.0.0.1:${port}` });
    }
    for (const r of replicas) await r.proc.waitForOutput('dispatcher listening', 30_000);
  });
  after(async () => {
    await group.stopAll();
    await redis?.stop();
  });

  const allocate = (base: string, token: string, clientId: string) =>
    fetch(`${base}/hidden/broker/${token}/connections/${clientId}?version=2022-12-01%7Eexperimental`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.api+json' },
      body: JSON.stringify({ data: { attributes: { deployment_location: 'snyk-broker-client', broker_token_first_char: 'b' } } }),
    });

  it('a server registered through one replica is known to the other', async () => {
    for (const id of ['0', '1', '2']) {
      const res = await fetch(`${replicas[Number(id) % 2]!.url}/internal/brokerservers/${id}?${V}`, {
        method: 'POST',
        headers: { 'content-type': 'application/vnd.api+json' },
        body: JSON.stringify({ data: { attributes: { health_check_link: `http://broker-server-${id}/healthcheck`, peer_url: `http://10.1.0.${id}:7341` } } }),
      });
      assert.equal(res.status, 200);
    }
    for (const r of replicas) {
      const body = (await (await fetch(`${r.url}/internal/brokerservers`)).json()) as { data: Array<{ id: string }> };
      assert.deepEqual(body.data.map((s) => s.id), ['0', '1', '2']);
    }
  });

  it('5 concurrent allocations through 2 replicas yield exactly 4, on distinct servers first (10 rounds)', async () => {
    for (let round = 0; round < 10; round++) {
      const token = sha(`redis-e2e-${round}-${randomUUID()}`);
      const answers = await Promise.all([0, 1, 2, 3, 4].map((i) => allocate(replicas[i % 2]!.url, token, `client-${i}`)));
      const statuses = answers.map((a) => a.status);
      assert.equal(statuses.filter((s) => s === 201).length, 4, `round ${round}: ${statuses}`);
      assert.equal(statuses.filter((s) => s === 429).length, 1, `round ${round}: ${statuses}`);
      const refused = answers.find((a) => a.status === 429)!;
      assert.equal(refused.headers.get('retry-after'), '2');
      const servers = await Promise.all(answers.filter((a) => a.status === 201).map(async (a) => ((await a.json()) as { data: { attributes: { server_id: string } } }).data.attributes.server_id));
      assert.equal(new Set(servers).size, 3);
      // The same client id gets the same server through either replica.
      const sticky = await allocate(replicas[1]!.url, token, 'client-0');
      const again = await allocate(replicas[0]!.url, token, 'client-0');
      if (sticky.status !== 429) {
        assert.equal(((await sticky.json()) as { data: { attributes: { server_id: string } } }).data.attributes.server_id, ((await again.json()) as { data: { attributes: { server_id: string } } }).data.attributes.server_id);
      }
    }
  });

  it('a slot released through one replica is free on the other', async () => {
    const token = sha(`release-${randomUUID()}`);
    for (let i = 0; i < 4; i++) assert.equal((await allocate(replicas[0]!.url, token, `c${i}`)).status, 201);
    assert.equal((await allocate(replicas[1]!.url, token, 'c4')).status, 429);
    const del = await fetch(`${replicas[1]!.url}/hidden/broker/${token}/connections/c2?version=2022-12-01%7Eexperimental`, { method: 'DELETE' });
    assert.equal(del.status, 204);
    assert.equal((await allocate(replicas[0]!.url, token, 'c4')).status, 201);
  });

  it('/readyz follows Redis; requests fail fast with 503 while it is gone', async () => {
    for (const r of replicas) assert.equal((await fetch(`${r.url}/readyz`)).status, 200);
    await redis.stop();
    await waitFor('readyz to report the store down', async () => (await fetch(`${replicas[0]!.url}/readyz`)).status === 503, { timeoutMs: 30_000 });
    const res = await allocate(replicas[0]!.url, sha('x'), 'c1');
    assert.equal(res.status, 503);
    assert.ok(res.headers.get('retry-after'));
    const body = (await res.json()) as { errors: Array<{ code: string }> };
    assert.equal(body.errors[0]!.code, FAILURES.STORE_UNAVAILABLE.code);
    // Liveness is not readiness: the process itself is fine.
    assert.equal((await fetch(`${replicas[0]!.url}/livez`)).status, 200);
  });
});
