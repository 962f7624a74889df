// Issue 15, items 4-6, with `broker client` as a real process: RES_BODY_URL_SUB rewrites a
// packument that the origin sends in small pieces, INSECURE_DOWNSTREAM reaches an https-named
// origin over http, each unimplemented Snyk variable is warned about exactly once, and no
// credential reaches the output even with LOG_ENABLE_BODY. (Malformed values of the new
// variables exit 2: the bad-config sweep covers every variable in --help.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { ProcessGroup } from '../support/processes.js';
import { FakeBrokerServer } from '../support/fake-broker-server.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';

const group = new ProcessGroup();
const token = randomUUID();
const secret = `nexus-pass-${randomUUID()}`;
let fake: FakeBrokerServer;
let origin: Server;
let originUrl = '';

before(async () => {
  fake = await new FakeBrokerServer().start();
  origin = createServer(async (req, res) => {
    for await (const _ of req) void _;
    const host = `${originUrl.replace('http://', 'https://')}`;
    const versions = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`3.1.${i}`, { version: `3.1.${i}`, dist: { tarball: `${host}/repository/npm/pkg/-/pkg-3.1.${i}.tgz` } }]));
    const body = Buffer.from(JSON.stringify({ name: 'pkg', versions, auth: req.headers.authorization ?? null }));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
    for (let off = 0; off < body.length; off += 5) {
      res.write(body.subarray(off, off + 5));
      if (off % 200 === 0) await sleep(1);
    }
    res.end();
  });
  originUrl = `http://127.0.0.1:${await listen(origin, 0, '127.0.0.1')}`;
});

after(async () => {
  try {
    const out = group.allOutput();
    assert.ok(!out.includes(token), 'the token appears in process output');
    assert.ok(!out.includes(secret), 'the origin credential appears in process output');
  } finally {
    await group.stopAll();
    await fake.stop();
    await closeServer(origin);
  }
});

test('a real client process: package URLs rewritten, https origin over http, one warning per unimplemented variable, bodies logged masked', async () => {
  const httpsOrigin = originUrl.replace('http://', 'https://');
  const accept = await writeAcceptFile({ private: [{ method: 'GET', path: '/repository/*', origin: `https://admin:\${NEXUS_PASSWORD}@${httpsOrigin.slice('https://'.length)}` }], public: [] });
  const port = await freePort();
  const p = group.broker('client', 'client', {
    BROKER_TOKEN: token,
    BROKER_SERVER_URL: fake.url,
    ACCEPT: accept,
    PORT: String(port),
    PREFLIGHT_CHECKS_ENABLED: 'false',
    LOG_LEVEL: 'debug',
    NEXUS_PASSWORD: secret,
    RES_BODY_URL_SUB: `${httpsOrigin}/repository`,
    INSECURE_DOWNSTREAM: 'true',
    LOG_ENABLE_BODY: 'true',
    // false keeps the classic client here; snyk-broker would run Universal Broker for it, so it is warned about.
    UNIVERSAL_BROKER_ENABLED: 'false',
    GIT_CLIENT_URL: 'http://code-agent:3000',
    CR_AGENT_URL: 'http://cra:8081',
  });
  await waitFor('two identified tunnels', () => fake.open().length === 2, { timeoutMs: 30_000 });
  const conn = fake.open().find((c) => c.role === 'primary')!;
  const streamingID = randomUUID();
  fake.emit(conn, 'request', { url: '/repository/npm/pkg', method: 'GET', headers: { 'snyk-request-id': randomUUID() }, streamingID, requestId: randomUUID() });
  const r = await waitFor('response-data', () => fake.responses.get(streamingID));
  assert.equal(r.head.status, 200);
  const doc = JSON.parse(r.body.toString('utf8')) as { versions: Record<string, { dist: { tarball: string } }>; auth: string };
  assert.equal(Object.keys(doc.versions).length, 50);
  for (const [v, entry] of Object.entries(doc.versions)) assert.equal(entry.dist.tarball, `http://internal-broker-server-next/broker/${token}/npm/pkg/-/pkg-${v}.tgz`);
  assert.equal(doc.auth, `Basic ${Buffer.from(`admin:${secret}`).toString('base64')}`, 'the rule credential reached the origin');
  assert.equal(r.head.headers?.['content-length'], String(r.body.length));

  await p.waitForOutput('origin answer body');
  const lines = p.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const warned = lines.filter((e) => /does not implement/.test(String(e.msg))).map((e) => e.variable);
  assert.deepEqual(warned.sort(), ['CR_AGENT_URL', 'GIT_CLIENT_URL', 'UNIVERSAL_BROKER_ENABLED']);
  assert.equal(lines.filter((e) => String(e.msg).startsWith('Caution! Running in insecure downstream mode')).length, 1);
  const bodyLine = lines.find((e) => e.msg === 'origin answer body')!;
  assert.match(String(bodyLine.responseBody), /"auth":"Basic \[REDACTED\]"/);

  const health = await request(`http://127.0.0.1:${port}/healthcheck`);
  await health.body.dump();
  assert.equal(health.statusCode, 200);
  assert.equal(await p.stop(), 0);
});
