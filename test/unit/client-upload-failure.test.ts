// The broker server dies while the origin is answering: the response-data upload cannot
// connect (3 retries), the unread origin body is dropped — without crashing the client
// (undici's body emits an error when destroyed unread), and the client keeps working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { FakeBrokerServer } from '../support/fake-broker-server.js';
import { startTestClient } from '../support/client-harness.js';
import { startOrigin } from '../support/origin.js';
import { waitFor } from '../support/wait.js';

test('an answer that cannot be uploaded is dropped without crashing the client', async (t) => {
  const fake = await new FakeBrokerServer().start();
  const origin = await startOrigin();
  const tc = await startTestClient(
    { BROKER_TOKEN: randomUUID(), BROKER_SERVER_URL: fake.url, ORIGIN_URL: origin.url },
    { private: [{ method: 'GET', path: '/*', origin: '${ORIGIN_URL}' }], public: [] },
  );
  let uncaught: unknown;
  const onUncaught = (err: unknown) => (uncaught = err);
  process.on('uncaughtException', onUncaught);
  t.after(async () => {
    process.off('uncaughtException', onUncaught);
    await tc.stop();
    await origin.close();
  });
  await waitFor('two tunnels', () => fake.open().length === 2);
  const conn = fake.open()[0]!;
  fake.emit(conn, 'request', { url: '/slow/400', method: 'GET', headers: {}, streamingID: randomUUID() });
  await waitFor('origin saw the request', () => origin.seen.some((s) => s.url === '/slow/400'));
  await fake.stop(); // the server is gone before the answer is ready: uploads are refused
  await tc.waitForLog('failed to deliver the answer to the broker server', undefined, 20_000);
  // Give a stray 'error' event the turn it would need to surface.
  await new Promise((r) => setImmediate(r));
  assert.equal(uncaught, undefined, `uncaught: ${String(uncaught)}`);
  const live = await fetch(`${tc.url}/livez`);
  assert.equal(live.status, 200);
  assert.ok(tc.logs().filter((e) => e.msg === 'response-data upload failed to connect; retrying').length >= 3);
});
