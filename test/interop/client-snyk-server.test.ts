// Our broker client against the real snyk-broker 5.22.14 server: relay both ways, a large
// streamed answer, errors, and a tunnel that survives a server restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startOrigin, patternSha256, type Origin } from '../support/origin.js';
import { startSnykBroker } from '../support/snyk-broker.js';
import { waitFor } from '../support/wait.js';
import { FAILURES } from '../../src/protocol/failures.js';

const group = new ProcessGroup();
const token = randomUUID();
const pollingToken = randomUUID();
const originToken = `origin-secret-${randomUUID()}`;
let origin: Origin;
let apiStandIn: Origin;
let server: RunningProcess;
let serverPort: number;
let serverEnv: Record<string, string>;
let clientPort: number;
let clientAcceptFile: string;

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

async function serverReady(): Promise<boolean> {
  const res = await request(`http://127.0.0.1:${serverPort}/connection-status/${token}`).catch(() => undefined);
  if (!res) return false;
  await res.body.dump();
  return res.statusCode === 200;
}

before(async () => {
  origin = await startOrigin();
  apiStandIn = await startOrigin();
  const dir = await mkdtemp(join(tmpdir(), 'client-interop-'));
  const serverAccept = join(dir, 'server-accept.json');
  await writeFile(serverAccept, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [{ method: 'any', path: '/*', origin: apiStandIn.url }] }));
  const clientAccept = join(dir, 'client-accept.json');
  clientAcceptFile = clientAccept;
  const closedPort = await freePort();
  await writeFile(
    clientAccept,
    JSON.stringify({
      private: [
        { method: 'any', path: '/echo/*', origin: '${ORIGIN_URL}', auth: { scheme: 'bearer', token: '${ORIGIN_TOKEN}' } },
        { method: 'GET', path: '/bytes/*', origin: '${ORIGIN_URL}' },
        { method: 'GET', path: '/status/*', origin: '${ORIGIN_URL}' },
        { method: 'GET', path: '/unreachable/*', origin: `http://127.0.0.1:${closedPort}` },
      ],
      public: [{ method: 'POST', path: '/webhook/*' }],
    }),
  );
  serverPort = await freePort();
  clientPort = await freePort();
  serverEnv = { PORT: String(serverPort), ACCEPT: serverAccept };
  server = await startSnykBroker(group, 'snyk-server', 'server', serverEnv);
  await waitFor('snyk-broker server health', async () => (await get(`http://127.0.0.1:${serverPort}/healthcheck`)).status === 200, { timeoutMs: 60_000 });
  group.broker('client', 'client', {
    BROKER_TOKEN: token,
    BROKER_SERVER_URL: `http://127.0.0.1:${serverPort}`,
    PORT: String(clientPort),
    ACCEPT: clientAccept,
    ORIGIN_URL: origin.url,
    ORIGIN_TOKEN: originToken,
    LOG_LEVEL: 'debug',
  });
  await waitFor('client ready', async () => (await get(`http://127.0.0.1:${clientPort}/readyz`)).status === 200, { timeoutMs: 60_000 });
  await waitFor('server sees the client', serverReady, { timeoutMs: 60_000 });
});

after(async () => {
  try {
    const out = group.allOutput();
    assert.ok(!out.includes(token), 'the broker token appears in process output');
    assert.ok(!out.includes(pollingToken), 'the polling client token appears in process output');
    assert.ok(!out.includes(originToken), 'the origin credential appears in process output');
  } finally {
    await group.stopAll();
    await origin?.close();
    await apiStandIn?.close();
  }
});

const platform = (path: string) => `http://127.0.0.1:${serverPort}/broker/${token}${path}`;

test('relays a GET with credentials injected and platform headers cleaned', async () => {
  const res = await get(platform('/echo/hello?x=1'), { 'snyk-acting-org-public-id': 'org-1', 'x-custom': 'abc' });
  assert.equal(res.status, 200);
  const echo = JSON.parse(res.text);
  assert.equal(echo.method, 'GET');
  assert.equal(echo.url, '/echo/hello?x=1');
  assert.equal(echo.headers.authorization, `Bearer ${originToken}`);
  assert.equal(echo.headers['x-custom'], 'abc');
  assert.equal(echo.headers['snyk-acting-org-public-id'], undefined);
  assert.match(echo.headers['user-agent'], /^Snyk Broker Client /);
});

test('relays a POST with a JSON body', async () => {
  const body = JSON.stringify({ hello: 'world', n: [1, 2, 3] });
  const res = await request(platform('/echo/post'), { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  assert.equal(res.statusCode, 200);
  const echo = (await res.body.json()) as { method: string; body: string; headers: Record<string, string> };
  assert.equal(echo.method, 'POST');
  assert.equal(echo.body, body);
  assert.equal(echo.headers['content-type'], 'application/json');
});

test('answers by ack when the platform asks for a websocket response', async () => {
  const res = await get(platform('/echo/ws'), { 'x-broker-ws-response': 'true' });
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-broker-ws-response'], 'true');
  assert.equal(JSON.parse(res.text).url, '/echo/ws');
});

test('streams a 50 MiB answer intact', async () => {
  const size = 50 * 1024 * 1024;
  const res = await request(platform(`/bytes/${size}`));
  assert.equal(res.statusCode, 200);
  const hash = createHash('sha256');
  let total = 0;
  for await (const chunk of res.body) {
    hash.update(chunk as Buffer);
    total += (chunk as Buffer).length;
  }
  assert.equal(total, size);
  assert.equal(hash.digest('hex'), patternSha256(size));
});

test('a request no private rule allows is answered 401 FILTER_BLOCKED', async () => {
  const res = await get(platform('/not-allowed/x'));
  assert.equal(res.status, 401);
  assert.equal(JSON.parse(res.text).code, 'FILTER_BLOCKED');
});

test('a traversal path is blocked', async () => {
  const res = await get(platform('/echo/%2e%2e/secret'));
  assert.equal(res.status, 401);
  assert.equal(JSON.parse(res.text).code, 'FILTER_BLOCKED');
});

test('an unreachable origin is answered 502 DOWNSTREAM_UNREACHABLE', async () => {
  const res = await get(platform('/unreachable/x'));
  assert.equal(res.status, 502);
  assert.equal(JSON.parse(res.text).code, 'DOWNSTREAM_UNREACHABLE');
});

test('an origin error status passes through', async () => {
  const res = await get(platform('/status/503'));
  assert.equal(res.status, 503);
});

test('a webhook goes through the server to its private origin and back', async () => {
  const body = JSON.stringify({ ref: 'refs/heads/main' });
  const res = await request(`http://127.0.0.1:${clientPort}/webhook/github/abc123`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', 'x-github-event': 'push' },
  });
  assert.equal(res.statusCode, 200);
  const echo = (await res.body.json()) as { url: string; body: string; headers: Record<string, string> };
  assert.equal(echo.url, '/webhook/github/abc123');
  assert.equal(echo.body, body);
  assert.equal(echo.headers['x-github-event'], 'push');
  assert.ok(apiStandIn.seen.some((s) => s.url === '/webhook/github/abc123'));
});

test('a form-encoded webhook does not hang', async () => {
  const res = await request(`http://127.0.0.1:${clientPort}/webhook/gitlab/form`, {
    method: 'POST',
    body: 'a=1&b=two%20words',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    headersTimeout: 30_000,
  });
  assert.equal(res.statusCode, 200);
  const echo = (await res.body.json()) as { body: string };
  assert.equal(echo.body, 'a=1&b=two%20words');
});

test('a local request no public rule allows is refused 401', async () => {
  const res = await request(`http://127.0.0.1:${clientPort}/not-a-webhook`, { method: 'POST', body: '{}' });
  assert.equal(res.statusCode, 401);
  assert.equal(res.headers['x-broker-failure'], FAILURES.FILTER_BLOCKED.reason);
  await res.body.dump();
});

test('health endpoints report both tunnels', async () => {
  const res = await get(`http://127.0.0.1:${clientPort}/healthcheck`);
  assert.equal(res.status, 200);
  const entries = JSON.parse(res.text) as Array<{ ok: boolean; brokerServerUrl: string }>;
  assert.equal(entries.length, 2);
  assert.ok(entries.every((e) => e.ok));
  assert.ok(entries[0]!.brokerServerUrl.endsWith('connection_role=primary'));
  assert.equal((await get(`http://127.0.0.1:${clientPort}/livez`)).status, 200);
  const metrics = await get(`http://127.0.0.1:${clientPort}/metrics`);
  assert.match(metrics.text, /broker_client_tunnels_open\{role="primary"\} 1/);
  assert.match(metrics.text, /broker_client_requests_total\{direction="inbound",status="2xx"\} \d+/);
  // snyk-broker's server does not offer answers over the tunnel: every answer kept to the
  // contract, a small one of known size too.
  assert.equal((await get(platform('/bytes/100'))).status, 200);
  const after = await get(`http://127.0.0.1:${clientPort}/metrics`);
  assert.match(after.text, /broker_client_answers_total\{via="response-data"\} [1-9]/);
  assert.doesNotMatch(after.text, /broker_client_answers_total\{via="tunnel"\}/);
});

test('the long-polling transport relays too', async () => {
  const port = await freePort();
  group.broker('client-polling', 'client', {
    BROKER_TOKEN: pollingToken,
    BROKER_SERVER_URL: `http://127.0.0.1:${serverPort}`,
    BROKER_CLIENT_TRANSPORT: 'polling',
    PORT: String(port),
    ACCEPT: clientAcceptFile,
    ORIGIN_URL: origin.url,
    ORIGIN_TOKEN: originToken,
  });
  await waitFor('polling client ready', async () => (await get(`http://127.0.0.1:${port}/readyz`).catch(() => ({ status: 0 }))).status === 200, { timeoutMs: 60_000 });
  const base = `http://127.0.0.1:${serverPort}/broker/${pollingToken}`;
  const res = await get(`${base}/echo/polled`);
  assert.equal(res.status, 200);
  assert.equal(JSON.parse(res.text).url, '/echo/polled');
  const acked = await get(`${base}/echo/polled-ack`, { 'x-broker-ws-response': 'true' });
  assert.equal(JSON.parse(acked.text).url, '/echo/polled-ack');
  const size = 5 * 1024 * 1024;
  const big = await request(`${base}/bytes/${size}`);
  const hash = createHash('sha256');
  for await (const c of big.body) hash.update(c as Buffer);
  assert.equal(hash.digest('hex'), patternSha256(size));
  const hook = await request(`http://127.0.0.1:${port}/webhook/polled`, { method: 'POST', body: '{"p":1}', headers: { 'content-type': 'application/json' } });
  assert.equal(hook.statusCode, 200);
  assert.equal(((await hook.body.json()) as { url: string }).url, '/webhook/polled');
  const health = JSON.parse((await get(`http://127.0.0.1:${port}/healthcheck`)).text) as Array<{ transport: string }>;
  assert.ok(health.every((h) => h.transport === 'polling'));
});

test('the service channel reloads filters', async () => {
  const res = await get(`http://127.0.0.1:${serverPort}/service/${token}/filters/reload`);
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.text), { ok: true, msg: 'Filters reloaded.' });
});

test('the tunnel survives a server restart', async () => {
  await server.stop();
  await waitFor('client to notice', async () => (await get(`http://127.0.0.1:${clientPort}/readyz`)).status === 503, { timeoutMs: 60_000 });
  server = await startSnykBroker(group, 'snyk-server-2', 'server', serverEnv);
  await waitFor('relay after restart', async () => (await get(platform('/echo/after-restart'))).status === 200, { timeoutMs: 90_000, intervalMs: 500 });
  const res = await get(platform('/echo/after-restart'));
  assert.equal(JSON.parse(res.text).url, '/echo/after-restart');
  // The long-polling client of the earlier test rides through the restart as well.
  const polled = `http://127.0.0.1:${serverPort}/broker/${pollingToken}/echo/polled-after-restart`;
  await waitFor('polling relay after restart', async () => (await get(polled)).status === 200, { timeoutMs: 90_000, intervalMs: 500 });
});
