// Tunnel deadlines: a server that never identifies (SOCKET_CONNECT_TIMEOUT) and one that stops
// sending engine.io pings are both given up on and retried.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { FakeBrokerServer } from '../support/fake-broker-server.js';
import { startTestClient } from '../support/client-harness.js';
import { waitFor } from '../support/wait.js';

test('a server that never identifies is dropped after SOCKET_CONNECT_TIMEOUT and retried', async (t) => {
  const fake = await new FakeBrokerServer().start();
  fake.sendIdentify = false;
  t.after(() => fake.stop());
  const tc = await startTestClient({ BROKER_TOKEN: randomUUID(), BROKER_SERVER_URL: fake.url, SOCKET_CONNECT_TIMEOUT: '1000' }, { private: [], public: [] });
  t.after(() => tc.stop());
  await tc.waitForLog('tunnel connect timed out');
  await waitFor('retries', () => fake.connections.filter((c) => c.role === 'primary').length >= 2, { timeoutMs: 20_000 });
  assert.equal(tc.client.isReady(), false);
  fake.sendIdentify = true;
  await waitFor('ready once the server identifies', () => tc.client.isReady(), { timeoutMs: 40_000 });
});

test('a server that stops sending engine.io pings is dropped and retried', async (t) => {
  const fake = await new FakeBrokerServer().start();
  fake.engineTimings = { pingInterval: 200, pingTimeout: 200 };
  t.after(() => fake.stop());
  const tc = await startTestClient({ BROKER_TOKEN: randomUUID(), BROKER_SERVER_URL: fake.url }, { private: [], public: [] });
  t.after(() => tc.stop());
  await tc.waitForLog('no engine.io ping from the server in time; reconnecting');
  await waitFor('a reconnect', () => fake.connections.filter((c) => c.role === 'primary').length >= 2, { timeoutMs: 20_000 });
});
