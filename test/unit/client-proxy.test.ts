// Tunnels honour HTTP_PROXY: the websocket goes through a CONNECT tunnel of a forward proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { FakeBrokerServer } from '../support/fake-broker-server.js';
import { startTestClient } from '../support/client-harness.js';
import { startProxy } from '../support/proxy.js';
import { waitFor } from '../support/wait.js';
import { makeTestPki } from '../support/tls.js';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';

test('tunnels go through the HTTP proxy with CONNECT; NO_PROXY bypasses it', async (t) => {
  const fake = await new FakeBrokerServer().start();
  const proxy = await startProxy();
  t.after(async () => {
    await fake.stop();
    await proxy.close();
  });
  const token = randomUUID();
  const proxied = await startTestClient({ BROKER_TOKEN: token, BROKER_SERVER_URL: fake.url, HTTP_PROXY: proxy.url }, { private: [], public: [] });
  t.after(() => proxied.stop());
  await waitFor('two tunnels via the proxy', () => fake.open().length === 2);
  assert.equal(proxy.seen.filter((s) => s === `CONNECT 127.0.0.1:${fake.port}`).length, 2);
  await proxied.stop();

  const seenBefore = proxy.seen.length;
  const direct = await startTestClient({ BROKER_TOKEN: token, BROKER_SERVER_URL: fake.url, HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' }, { private: [], public: [] });
  t.after(() => direct.stop());
  await waitFor('two direct tunnels', () => fake.open().length === 2);
  assert.equal(proxy.seen.length, seenBefore);
});

test('CA_CERT is trusted for wss tunnels and response uploads', async (t) => {
  const pki = await makeTestPki();
  const fake = await new FakeBrokerServer({ cert: pki.cert, key: pki.key }).start();
  t.after(() => fake.stop());
  const tc = await startTestClient({ BROKER_TOKEN: randomUUID(), BROKER_SERVER_URL: fake.url, CA_CERT: pki.caFile, ORIGIN_URL: 'http://127.0.0.1:1' }, { private: [{ method: 'GET', path: '/*', origin: '${ORIGIN_URL}' }], public: [] });
  t.after(() => tc.stop());
  await waitFor('two tls tunnels', () => fake.open().length === 2);
  const streamingID = randomUUID();
  fake.emit(fake.open()[0]!, 'request', { url: '/nowhere', method: 'GET', headers: {}, streamingID });
  const r = await waitFor('response-data over https', () => fake.responses.get(streamingID), { timeoutMs: 20_000 });
  assert.equal(r.head.status, 502);
  assert.equal(r.head.errorType, 'DOWNSTREAM_UNREACHABLE');
});

test('without the CA a wss tunnel does not open', async (t) => {
  const pki = await makeTestPki();
  const fake = await new FakeBrokerServer({ cert: pki.cert, key: pki.key }).start();
  t.after(() => fake.stop());
  const tc = await startTestClient({ BROKER_TOKEN: randomUUID(), BROKER_SERVER_URL: fake.url }, { private: [], public: [] });
  t.after(() => tc.stop());
  await tc.waitForLog('tunnel error', (e) => /certificate/i.test(String(e.err)));
  assert.equal(fake.open().length, 0);
});

test('HTTPS_CERT/HTTPS_KEY serve the local port over TLS', async (t) => {
  const pki = await makeTestPki();
  const fake = await new FakeBrokerServer().start();
  t.after(() => fake.stop());
  const tc = await startTestClient({ BROKER_TOKEN: randomUUID(), BROKER_SERVER_URL: fake.url, HTTPS_CERT: pki.certFile, HTTPS_KEY: pki.keyFile }, { private: [], public: [] });
  t.after(() => tc.stop());
  const agent = new Agent({ connect: { ca: readFileSync(pki.caFile, 'utf8') } });
  t.after(() => agent.close());
  const res = await request(`https://127.0.0.1:${tc.port}/livez`, { dispatcher: agent });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(await res.body.json(), { ok: true });
});
