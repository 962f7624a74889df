// Webhooks with no open tunnel: 503 no-connection, or the API_BASE_URL fallback when set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { startTestClient } from '../support/client-harness.js';
import { startOrigin } from '../support/origin.js';
import { freePort } from '../support/ports.js';
import { maskToken } from '../../src/protocol/index.js';
import { FAILURES } from '../../src/protocol/failures.js';

const accept = { private: [], public: [{ method: 'POST', path: '/webhook/*' }] };

test('no tunnel and no API_BASE_URL: 503 no-connection', async (t) => {
  const tc = await startTestClient({ BROKER_TOKEN: randomUUID(), BROKER_SERVER_URL: `http://127.0.0.1:${await freePort()}` }, accept);
  t.after(() => tc.stop());
  const res = await request(`${tc.url}/webhook/github/x`, { method: 'POST', body: '{}' });
  assert.equal(res.statusCode, 503);
  assert.equal(res.headers['x-broker-failure'], FAILURES.NO_CONNECTION.reason);
  await res.body.dump();
});

test('no tunnel and API_BASE_URL set: the webhook goes to the API with the masked token', async (t) => {
  const api = await startOrigin();
  const token = randomUUID();
  const tc = await startTestClient({ BROKER_TOKEN: token, BROKER_SERVER_URL: `http://127.0.0.1:${await freePort()}`, API_BASE_URL: api.url }, accept);
  t.after(async () => {
    await tc.stop();
    await api.close();
  });
  const res = await request(`${tc.url}/webhook/github/fallback`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
  assert.equal(res.statusCode, 200);
  const echo = (await res.body.json()) as { url: string; body: string; headers: Record<string, string> };
  assert.equal(echo.url, '/webhook/github/fallback');
  assert.equal(echo.body, '{"a":1}');
  assert.equal(echo.headers['x-snyk-broker'], maskToken(token));
  await tc.waitForLog('Websocket connection closed, forwarding via API.');
});
