// Health endpoints: /healthcheck shape, /systemcheck with credentials, /health/checks from
// preflight, /livez, /readyz, /metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { FakeBrokerServer } from '../support/fake-broker-server.js';
import { startTestClient, type TestClient } from '../support/client-harness.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { waitFor } from '../support/wait.js';

const token = randomUUID();
const validationSecret = `validation-${randomUUID()}`;
let fake: FakeBrokerServer;
let origin: Origin;
let tc: TestClient;
let failing: TestClient;

async function getJson(url: string) {
  const res = await request(url);
  return { status: res.statusCode, body: (await res.body.json()) as unknown };
}

before(async () => {
  fake = await new FakeBrokerServer().start();
  origin = await startOrigin();
  tc = await startTestClient(
    { BROKER_TOKEN: token, BROKER_SERVER_URL: fake.url, PREFLIGHT_CHECKS_ENABLED: 'true', BROKER_CLIENT_VALIDATION_URL: `${origin.url}/echo/validate`, BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER: `token ${validationSecret}` },
    { private: [], public: [] },
  );
  failing = await startTestClient(
    { BROKER_TOKEN: token, BROKER_SERVER_URL: fake.url, BROKER_CLIENT_VALIDATION_URL: `${origin.url}/status/500`, BROKER_CLIENT_VALIDATION_BASIC_AUTH: 'user:pass-word' },
    { private: [], public: [] },
  );
  await waitFor('four tunnels', () => fake.open().length === 4);
});

after(async () => {
  await tc.stop();
  await failing.stop();
  await fake.stop();
  await origin.close();
  const logs = tc.lines.join('\n') + failing.lines.join('\n');
  assert.ok(!logs.includes(token) && !logs.includes(validationSecret), 'secret in logs');
});

test('/healthcheck lists both tunnels with the contract fields', async () => {
  const { status, body } = await getJson(`${tc.url}/healthcheck`);
  assert.equal(status, 200);
  const list = body as Array<Record<string, unknown>>;
  assert.deepEqual(list.map((e) => e.brokerServerUrl), [`${fake.url}/?connection_role=primary`, `${fake.url}/?connection_role=secondary`]);
  for (const e of list) {
    assert.equal(e.ok, true);
    assert.equal(e.websocketConnectionOpen, true);
    assert.equal(e.transport, 'websocket');
    assert.equal(typeof e.version, 'string');
  }
});

test('/systemcheck probes the validation URL with the credential, masked in the answer', async () => {
  const { status, body } = await getJson(`${tc.url}/systemcheck`);
  assert.equal(status, 200);
  const [r] = body as Array<Record<string, unknown>>;
  assert.equal(r!.ok, true);
  assert.equal(r!.brokerClientValidationUrlStatusCode, 200);
  assert.equal(r!.brokerClientValidationMethod, 'GET');
  // As snyk-broker's credsFromHeader: the masked part is the header value after its scheme.
  assert.equal(r!.maskedCredentials, `val***${validationSecret.slice(-3)}`);
  const seen = origin.seen.find((s) => s.url === '/echo/validate');
  assert.equal(seen?.headers.authorization, `token ${validationSecret}`);
});

test('/systemcheck is 500 when the validation URL fails', async () => {
  const { status, body } = await getJson(`${failing.url}/systemcheck`);
  assert.equal(status, 500);
  const [r] = body as Array<Record<string, unknown>>;
  assert.equal(r!.ok, false);
  assert.equal(r!.brokerClientValidationUrlStatusCode, 500);
  assert.equal(origin.seen.find((s) => s.url === '/status/500')?.headers.authorization, `Basic ${Buffer.from('user:pass-word').toString('base64')}`);
});

test('/health/checks serves the preflight results', async () => {
  const list = await waitFor('preflight results', async () => {
    const { body } = await getJson(`${tc.url}/health/checks`);
    return (body as unknown[]).length > 0 ? (body as Array<{ id: string; status: string }>) : undefined;
  });
  assert.equal(list.find((c) => c.id === 'broker-server-status')?.status, 'passing');
  assert.equal(list.find((c) => c.id === 'broker-token-validation')?.status, 'passing');
  const one = await getJson(`${tc.url}/health/checks/broker-server-status`);
  assert.equal(one.status, 200);
  assert.equal((await getJson(`${tc.url}/health/checks/nope`)).status, 404);
  await tc.waitForLog(/^preflight checks: \d+\/\d+ passing$/);
});

test('/livez, /readyz and /metrics', async () => {
  assert.equal((await getJson(`${tc.url}/livez`)).status, 200);
  assert.equal((await getJson(`${tc.url}/readyz`)).status, 200);
  const res = await request(`${tc.url}/metrics`);
  const text = await res.body.text();
  assert.match(String(res.headers['content-type']), /text\/plain/);
  assert.match(text, /broker_client_tunnels_open\{role="primary"\} 1/);
  assert.match(text, /broker_client_tunnels_open\{role="secondary"\} 1/);
  assert.match(text, /broker_client_ready 1/);
});
