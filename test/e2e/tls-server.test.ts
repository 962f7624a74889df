import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { makeTestPki, type TestPki } from '../support/tls.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { startSnykBroker } from '../support/snyk-broker.js';

/**
 * `broker server` with HTTPS_CERT/HTTPS_KEY listens with TLS: our client reaches it over wss
 * (and https long-polling) when it trusts the CA (CA_CERT or NODE_EXTRA_CA_CERTS), and refuses
 * a certificate from another CA or for another name with a log line that says so; an https
 * origin with an untrusted certificate gets a clear 502 instead of an answer.
 */
const group = new ProcessGroup();
let pki: TestPki;
let otherCa: TestPki;
let wrongName: TestPki;
let origin: Origin;
let badOrigin: Server;
let accept: string;
let serverPort = 0;
let wrongNamePort = 0;
let platform: Agent;

before(async () => {
  [pki, otherCa] = await Promise.all([makeTestPki(), makeTestPki()]);
  // Signed by the trusted CA, but for another name only.
  wrongName = await makeTestPki('DNS:other.example');
  origin = await startOrigin();
  // An https origin whose certificate comes from a CA the client does not trust.
  badOrigin = createHttpsServer({ cert: otherCa.cert, key: otherCa.key }, (_req, res) => res.end('should never be read'));
  await new Promise<void>((resolve) => badOrigin.listen(0, '127.0.0.1', () => resolve()));
  accept = await writeAcceptFile({
    private: [
      { method: 'GET', path: '/echo/*', origin: origin.url },
      { method: 'GET', path: '/tls-origin/*', origin: `https://127.0.0.1:${(badOrigin.address() as AddressInfo).port}` },
    ],
    public: [],
  });
  serverPort = await freePort();
  wrongNamePort = await freePort();
  const servers = [
    group.broker('tls-server', 'server', { PORT: String(serverPort), BROKER_SERVER_HOST: '127.0.0.1', HTTPS_CERT: pki.certFile, HTTPS_KEY: pki.keyFile }),
    group.broker('wrong-name-server', 'server', { PORT: String(wrongNamePort), BROKER_SERVER_HOST: '127.0.0.1', HTTPS_CERT: wrongName.certFile, HTTPS_KEY: wrongName.keyFile }),
  ];
  await Promise.all(servers.map((s) => s.waitForOutput('broker server listening', 30_000)));
  platform = new Agent({ connect: { ca: await readFile(pki.caFile, 'utf8') } });
});

after(async () => {
  await group.stopAll();
  await platform?.close();
  await origin?.close();
  await new Promise<void>((resolve) => (badOrigin ? badOrigin.close(() => resolve()) : resolve()));
});

async function get(url: string, dispatcher?: Agent) {
  const r = await request(url, { dispatcher, headersTimeout: 30_000, bodyTimeout: 30_000 });
  return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
}

async function startClient(name: string, token: string, env: Record<string, string>): Promise<{ proc: RunningProcess; port: number }> {
  const port = await freePort();
  const proc = group.broker(name, 'client', { BROKER_TOKEN: token, PORT: String(port), ACCEPT: accept, PREFLIGHT_CHECKS_ENABLED: 'false', ...env });
  return { proc, port };
}

function connected(token: string): Promise<boolean> {
  return get(`https://127.0.0.1:${serverPort}/connection-status/${token}`, platform).then((r) => r.status === 200);
}

test('the server listens with TLS: plain http on its port is refused and https answers', async () => {
  const health = await get(`https://127.0.0.1:${serverPort}/healthcheck`, platform);
  assert.equal(health.status, 200);
  await assert.rejects(get(`http://127.0.0.1:${serverPort}/healthcheck`));
});

for (const variant of [
  { name: 'websocket, CA_CERT', env: (ca: string) => ({ CA_CERT: ca }) },
  { name: 'long polling, CA_CERT', env: (ca: string) => ({ CA_CERT: ca, BROKER_CLIENT_TRANSPORT: 'polling' }) },
  { name: 'websocket, NODE_EXTRA_CA_CERTS', env: (ca: string) => ({ NODE_EXTRA_CA_CERTS: ca }) },
]) {
  test(`our client trusts the server through a custom CA (${variant.name}) and relays over the TLS tunnel`, async () => {
    const token = randomUUID();
    const client = await startClient(`client ${variant.name}`, token, { BROKER_SERVER_URL: `https://127.0.0.1:${serverPort}`, ...variant.env(pki.caFile) });
    await waitFor(`${variant.name} client connected`, () => connected(token), { timeoutMs: 30_000 });
    const r = await get(`https://127.0.0.1:${serverPort}/broker/${token}/echo/over-tls`, platform);
    assert.equal(r.status, 200, r.body);
    assert.equal((JSON.parse(r.body) as { url: string }).url, '/echo/over-tls');
    assert.equal((await get(`http://127.0.0.1:${client.port}/healthcheck`)).status, 200);

    if (variant.name === 'websocket, CA_CERT') {
      // An https origin with an untrusted certificate: a 502 naming the certificate problem.
      const bad = await get(`https://127.0.0.1:${serverPort}/broker/${token}/tls-origin/x`, platform);
      assert.equal(bad.status, 502, bad.body);
      const body = JSON.parse(bad.body) as { code: string; message: string };
      assert.equal(body.code, 'DOWNSTREAM_ERROR');
      assert.match(body.message, /^TLS certificate of https:\/\/127\.0\.0\.1:\d+ is not trusted \([A-Z_]+\): set CA_CERT/);
    }
    await client.proc.stop();
  });
}

test('a server certificate from another CA is refused: no tunnel, a log line naming the problem, /healthcheck unhealthy', async () => {
  const token = randomUUID();
  const client = await startClient('client other CA', token, { BROKER_SERVER_URL: `https://127.0.0.1:${serverPort}`, CA_CERT: otherCa.caFile });
  await client.proc.waitForOutput('TLS certificate of', 30_000);
  const line = client.proc.output().split('\n').find((l) => l.includes('TLS certificate of'))!;
  assert.match(line, /"level":"error"/);
  assert.match(line, /TLS certificate of wss:\/\/127\.0\.0\.1:\d+ is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\): set CA_CERT/);
  const health = await get(`http://127.0.0.1:${client.port}/healthcheck`);
  assert.equal(health.status, 500, health.body);
  assert.ok((JSON.parse(health.body) as Array<{ ok: boolean }>).every((t) => !t.ok));
  assert.equal(await connected(token), false);
  await client.proc.stop();
});

test('a server certificate for another host name is refused with a message naming the name', async () => {
  const token = randomUUID();
  const client = await startClient('client wrong name', token, { BROKER_SERVER_URL: `https://127.0.0.1:${wrongNamePort}`, CA_CERT: wrongName.caFile, BROKER_CLIENT_TRANSPORT: 'polling' });
  await client.proc.waitForOutput('TLS certificate of', 30_000);
  assert.match(client.proc.output(), /TLS certificate of https:\/\/127\.0\.0\.1:\d+ does not name 127\.0\.0\.1 \(ERR_TLS_CERT_ALTNAME_INVALID\)/);
  assert.equal((await get(`http://127.0.0.1:${client.port}/healthcheck`)).status, 500);
  await client.proc.stop();
});

test('the real snyk-broker client connects to our TLS server with NODE_EXTRA_CA_CERTS', async () => {
  const token = randomUUID();
  await startSnykBroker(group, 'snyk-client tls', 'client', {
    BROKER_TOKEN: token,
    BROKER_SERVER_URL: `https://127.0.0.1:${serverPort}`,
    NODE_EXTRA_CA_CERTS: pki.caFile,
    PORT: String(await freePort()),
    ACCEPT: accept,
    PREFLIGHT_CHECKS_ENABLED: 'false',
  });
  await waitFor('the snyk-broker client connected over TLS', () => connected(token), { timeoutMs: 60_000 });
  const r = await get(`https://127.0.0.1:${serverPort}/broker/${token}/echo/real-client`, platform);
  assert.equal(r.status, 200, r.body);
  assert.ok(!group.allOutput().includes(token), 'a token appears in process output');
});

test('two TLS servers with a dispatcher: peer routing crosses over https (NODE_EXTRA_CA_CERTS) with the internal secret', async () => {
  const token = randomUUID();
  const secret = 'tls-peer-secret-0123456789';
  const dPort = await freePort();
  const dispatcherUrl = `http://127.0.0.1:${dPort}`;
  const dispatcher = group.broker('tls dispatcher', 'dispatcher', { PORT: String(dPort), DISPATCHER_HOST: '127.0.0.1', BROKER_INTERNAL_SECRET: secret, NODE_EXTRA_CA_CERTS: pki.caFile });
  await dispatcher.waitForOutput('dispatcher listening', 30_000);
  const ports = [await freePort(), await freePort()];
  const servers = ports.map((port, i) =>
    group.broker(`tls peer ${i}`, 'server', {
      PORT: String(port),
      BROKER_SERVER_HOST: '127.0.0.1',
      BROKER_SERVER_ID: String(i),
      HTTPS_CERT: pki.certFile,
      HTTPS_KEY: pki.keyFile,
      BROKER_SERVER_PEER_URL: `https://127.0.0.1:${port}`,
      DISPATCHER_URL: dispatcherUrl,
      BROKER_INTERNAL_SECRET: secret,
      BROKER_SERVER_ROUTING_REFRESH_MS: '300',
      NODE_EXTRA_CA_CERTS: pki.caFile,
    }),
  );
  await Promise.all(servers.map((s) => s.waitForOutput('broker server listening', 30_000)));
  // The token's only client sits on server 1; the platform calls server 0.
  const client = await startClient('client behind tls peer 1', token, { BROKER_SERVER_URL: `https://127.0.0.1:${ports[1]}`, CA_CERT: pki.caFile });
  await waitFor('the client connected to server 1', async () => (await get(`https://127.0.0.1:${ports[1]}/connection-status/${token}`, platform)).status === 200, { timeoutMs: 30_000 });
  await waitFor(
    'server 0 forwarding to server 1 over https',
    async () => {
      const r = await get(`https://127.0.0.1:${ports[0]}/broker/${token}/echo/via-peer`, platform);
      return r.status === 200 && r.headers['x-broker-served-by'] === '1';
    },
    { timeoutMs: 30_000 },
  );
  for (let n = 0; n < 20; n++) {
    const r = await get(`https://127.0.0.1:${ports[0]}/broker/${token}/echo/via-peer-${n}`, platform);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.headers['x-broker-served-by'], '1');
  }
  assert.ok(!servers.some((s) => s.output().includes('without the valid internal secret')), 'a peer hop was refused');
  await client.proc.stop();
});
