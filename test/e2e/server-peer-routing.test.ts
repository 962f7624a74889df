import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { hashToken } from '../../src/protocol/index.js';
import { ProcessGroup } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startPeerServers } from '../support/peer-servers.js';
import { waitFor } from '../support/wait.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { startSnykBroker } from '../support/snyk-broker.js';

/**
 * Two of our servers report to our dispatcher; one real snyk-broker client sits on each.
 * Requests sent to one server are spread over the tunnels of both, and a server that drains
 * hands new requests to its peer instead of refusing them.
 */
const group = new ProcessGroup();
const agent = new Agent({ connections: 32 });
let origin: Origin | undefined;
after(async () => {
  await group.stopAll();
  await agent.close();
  await origin?.close();
});

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { dispatcher: agent, headers });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

test('requests to one server use the tunnels on its peer too; a draining server forwards instead of refusing', async () => {
  const token = randomUUID();
  origin = await startOrigin();
  const dir = await mkdtemp(join(tmpdir(), 'server-peer-'));
  const accept = join(dir, 'client-accept.json');
  await writeFile(accept, JSON.stringify({ private: [{ method: 'GET', path: '/*', origin: '${ORIGIN_URL}' }], public: [] }));
  const { dispatcherUrl, ports, servers } = await startPeerServers(group, ['a', 'b'], { internalSecret: 'peer-test-secret', serverEnv: { BROKER_SERVER_DRAIN_GRACE_MS: '15000' } });
  for (const id of ['a', 'b'] as const) {
    await startSnykBroker(group, `snyk-client-${id}`, 'client', {
      BROKER_TOKEN: token,
      BROKER_SERVER_URL: `http://127.0.0.1:${ports[id]}`,
      PORT: String(await freePort()),
      ACCEPT: accept,
      PREFLIGHT_CHECKS_ENABLED: 'false',
      ORIGIN_URL: origin.url,
    });
  }
  const urlA = `http://127.0.0.1:${ports.a}`;
  await waitFor(
    'the dispatcher to know 2 tunnels on each server',
    async () => {
      const r = await get(`${dispatcherUrl}/internal/tokens/${hashToken(token)}/connections`, { 'x-broker-internal-secret': 'peer-test-secret' });
      if (r.status !== 200) return false;
      const servers = (JSON.parse(r.body) as { data: { attributes: { servers: Array<{ connections: Array<{ tunnels: number }> }> } } }).data.attributes.servers;
      return servers.length === 2 && servers.every((s) => s.connections.reduce((n, c) => n + c.tunnels, 0) === 2);
    },
    { timeoutMs: 60_000 },
  );
  await waitFor('server a to route to b', async () => (await get(`${urlA}/broker/${token}/echo/probe`)).headers['x-broker-served-by'] === 'b', { timeoutMs: 30_000 });

  // 400 requests, all to server a: every tunnel of both clients serves some.
  const perConnection = new Map<string, number>();
  const perServer = { a: 0, b: 0 };
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < 400) {
        const n = next++;
        const r = await get(`${urlA}/broker/${token}/echo/spread-${n}`);
        assert.equal(r.status, 200, r.body);
        assert.ok(r.body.includes(`/echo/spread-${n}`));
        const conn = String(r.headers['x-broker-connection']);
        perConnection.set(conn, (perConnection.get(conn) ?? 0) + 1);
        perServer[r.headers['x-broker-served-by'] === 'b' ? 'b' : 'a']++;
      }
    }),
  );
  assert.equal(perConnection.size, 4, `tunnels used: ${[...perConnection.entries()].map(([k, v]) => `${k}=${v}`).join(', ')}`);
  assert.ok(perServer.a > 0 && perServer.b > 0, JSON.stringify(perServer));
  const counts = [...perConnection.values()];
  assert.ok(Math.max(...counts) <= 1.5 * Math.min(...counts), `per tunnel: ${counts.join(', ')}`);

  // Drain a while one local request is in flight there: new requests to a are forwarded to b.
  const slow = get(`${urlA}/broker/${token}/slow/3000`, { 'x-broker-forwarded-by': 'test', 'x-broker-internal-secret': 'peer-test-secret' });
  await waitFor('the slow request reached the origin', () => origin!.seen.some((s) => s.url === '/slow/3000'));
  servers.a!.kill('SIGTERM');
  await servers.a!.waitForOutput('draining');
  const during = await get(`${urlA}/broker/${token}/echo/during-drain`);
  assert.equal(during.status, 200, `${during.status} ${String(during.headers['x-broker-failure'])}`);
  assert.equal(during.headers['x-broker-served-by'], 'b');
  assert.equal((await slow).status, 200);
  assert.equal(await servers.a!.exited, 0);
  assert.ok(!group.allOutput().includes(token), 'token leaked into a log');
});
