// `broker client` and `broker preflight` as real processes: config errors exit 2, help lists
// the variables, preflight exit codes, SIGTERM drains and exits 0, no token in any output.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { ProcessGroup } from '../support/processes.js';
import { FakeBrokerServer } from '../support/fake-broker-server.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { CLI } from '../support/paths.js';

const group = new ProcessGroup();
const token = randomUUID();
const fakes: FakeBrokerServer[] = [];

after(async () => {
  try {
    assert.ok(!group.allOutput().includes(token), 'the token appears in process output');
  } finally {
    await group.stopAll();
    for (const f of fakes) await f.stop();
  }
});

test('a missing required variable exits 2 naming it', async () => {
  const p = group.broker('client-noenv', 'client', { BROKER_SERVER_URL: 'not a url' });
  assert.equal(await p.exited, 2);
  assert.match(p.output(), /BROKER_TOKEN is required/);
  assert.match(p.output(), /BROKER_SERVER_URL must be a URL/);
});

test('an unset accept variable is empty as in snyk-broker: the client starts and warns once, naming it and its rule count', async () => {
  const accept = await writeAcceptFile({ private: [{ path: '/*', origin: '${GITHUB_API}' }, { path: '/x', origin: 'https://${GITHUB_API}/v3' }], public: [] });
  const p = group.broker('client-novar', 'client', { BROKER_TOKEN: token, BROKER_SERVER_URL: 'http://127.0.0.1:1', ACCEPT: accept, PORT: '0', PREFLIGHT_CHECKS_ENABLED: 'false' });
  await p.waitForOutput('broker client listening', 30_000);
  const warnings = p.output().split('\n').filter((l) => l.includes('unset variables'));
  assert.equal(warnings.length, 1, p.output());
  assert.match(warnings[0]!, /GITHUB_API \(2 rules\)/);
  assert.equal(await p.stop(), 0);
});

test('client --help lists every variable with defaults', async () => {
  const h = group.spawnNode('help', CLI, ['client', '--help'], {});
  await h.exited;
  for (const name of ['BROKER_TOKEN', 'BROKER_SERVER_URL', 'BROKER_CLIENT_URL', 'BROKER_CLIENT_ID', 'PORT', 'ACCEPT', 'BROKER_HA_MODE_ENABLED', 'BROKER_DISPATCHER_BASE_URL', 'API_BASE_URL', 'DISPATCHER_URL_PREFIX', 'PREFLIGHT_CHECKS_ENABLED', 'LOG_LEVEL', 'HTTPS_PROXY', 'NO_PROXY', 'NODE_EXTRA_CA_CERTS', 'SOCKET_PING_INTERVAL', 'SOCKET_PONG_TIMEOUT', 'SOCKET_CONNECT_TIMEOUT', 'BROKER_CLIENT_VALIDATION_URL', 'BROKER_CLIENT_DRAIN_GRACE_MS']) {
    assert.ok(h.output().includes(name), `${name} missing from help`);
  }
});

test('preflight exits 1 when the server is unreachable and 0 when all pass', async () => {
  const accept = await writeAcceptFile({ private: [], public: [] });
  const closed = await freePort();
  const bad = group.broker('preflight-bad', 'preflight', { BROKER_TOKEN: token, BROKER_SERVER_URL: `http://127.0.0.1:${closed}`, ACCEPT: accept });
  assert.equal(await bad.exited, 1);
  assert.match(bad.output(), /broker-server-status/);
  const fake = await new FakeBrokerServer().start();
  fakes.push(fake);
  const good = group.broker('preflight-good', 'preflight', { BROKER_TOKEN: token, BROKER_SERVER_URL: fake.url, ACCEPT: accept });
  assert.equal(await good.exited, 0);
  assert.match(good.output(), /preflight checks: \d+\/\d+ passing/);
});

test('SIGTERM drains and exits 0', async () => {
  const fake = await new FakeBrokerServer().start();
  fakes.push(fake);
  const accept = await writeAcceptFile({ private: [], public: [{ method: 'POST', path: '/webhook/*' }] });
  const port = await freePort();
  const p = group.broker('client', 'client', { BROKER_TOKEN: token, BROKER_SERVER_URL: fake.url, ACCEPT: accept, PORT: String(port) });
  await waitFor('client ready', async () => {
    const r = await request(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    if (!r) return false;
    await r.body.dump();
    return r.statusCode === 200;
  }, { timeoutMs: 30_000 });
  await waitFor('identified', () => fake.open().length === 2);
  assert.equal(fake.open()[0]!.identify!.token, token);
  assert.equal(await p.stop(), 0);
  assert.match(p.output(), /broker client stopped/);
});
