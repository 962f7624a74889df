// The dispatcher's server_url may be a pod address this network cannot reach: the client then
// connects through BROKER_SERVER_URL with server_id (the load balancer routes by it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { FakeBrokerServer } from '../support/fake-broker-server.js';
import { startTestClient } from '../support/client-harness.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';

test('an unreachable server_url falls back to BROKER_SERVER_URL with server_id', async (t) => {
  const fake = await new FakeBrokerServer().start();
  const unreachable = `http://127.0.0.1:${await freePort()}`;
  const dispatcher = createServer((req, res) => {
    req.resume();
    res.writeHead(201, { 'content-type': 'application/vnd.api+json' });
    res.end(JSON.stringify({ data: { attributes: { server_id: '2', server_url: unreachable } } }));
  });
  const port = await listen(dispatcher, 0, '127.0.0.1');
  t.after(async () => {
    await fake.stop();
    await closeServer(dispatcher);
  });
  const tc = await startTestClient(
    { BROKER_TOKEN: randomUUID(), BROKER_SERVER_URL: fake.url, BROKER_HA_MODE_ENABLED: 'true', BROKER_DISPATCHER_BASE_URL: `http://127.0.0.1:${port}` },
    { private: [], public: [] },
  );
  t.after(() => tc.stop());
  await waitFor('tunnels through the fallback', () => fake.open().length === 2, { timeoutMs: 30_000 });
  for (const c of fake.open()) assert.equal(c.url.searchParams.get('server_id'), '2');
  await tc.waitForLog(/not reachable from here/);
  const attempts = tc.logs().filter((e) => e.msg === 'broker client is connecting to broker server').map((e) => String(e.url));
  assert.ok(attempts.some((u) => u.startsWith(unreachable)), 'the direct URL was never tried');
});

// A server_url on another host than BROKER_SERVER_URL's (a name that may resolve to anything in
// the client's network) never gets the token unless BROKER_CLIENT_TRUST_SERVER_URL says so.
for (const trust of [false, true]) {
  test(`a server_url on another host is ${trust ? 'used with' : 'ignored without'} BROKER_CLIENT_TRUST_SERVER_URL`, async (t) => {
    const fake = await new FakeBrokerServer().start();
    const other = await new FakeBrokerServer().start();
    // Same port, other host name: `localhost` is not BROKER_SERVER_URL's `127.0.0.1`.
    const elsewhere = other.url.replace('127.0.0.1', 'localhost');
    const dispatcher = createServer((req, res) => {
      req.resume();
      res.writeHead(201, { 'content-type': 'application/vnd.api+json' });
      res.end(JSON.stringify({ data: { attributes: { server_id: '3', server_url: elsewhere } } }));
    });
    const port = await listen(dispatcher, 0, '127.0.0.1');
    t.after(async () => {
      await fake.stop();
      await other.stop();
      await closeServer(dispatcher);
    });
    const tc = await startTestClient(
      {
        BROKER_TOKEN: randomUUID(),
        BROKER_SERVER_URL: fake.url,
        BROKER_HA_MODE_ENABLED: 'true',
        BROKER_DISPATCHER_BASE_URL: `http://127.0.0.1:${port}`,
        ...(trust ? { BROKER_CLIENT_TRUST_SERVER_URL: 'true' } : {}),
      },
      { private: [], public: [] },
    );
    t.after(() => tc.stop());
    const chosen = trust ? other : fake;
    await waitFor('both tunnels up', () => chosen.open().length === 2, { timeoutMs: 30_000 });
    for (const c of chosen.open()) assert.equal(c.url.searchParams.get('server_id'), '3');
    assert.equal((trust ? fake : other).connections.length, 0, 'the token went to the other server');
    if (!trust) await tc.waitForLog(/BROKER_CLIENT_TRUST_SERVER_URL/);
  });
}
