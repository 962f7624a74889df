// Snyk variables the client lacked (issue 15, items 4-6), through the real relay of an in-process
// client and a scripted broker server: RES_BODY_URL_SUB on an npm packument delivered in small
// awkward chunks, INSECURE_DOWNSTREAM, LOG_ENABLE_BODY with credentials still masked,
// credential pools in x-broker-var-sub and /systemcheck, and one warning per
// unimplemented Snyk variable.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { FakeBrokerServer, type FakeConnection } from '../support/fake-broker-server.js';
import { startTestClient, type TestClient } from '../support/client-harness.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';
import { waitFor } from '../support/wait.js';
import { RES_BODY_URL_SUB_TARGET } from '../../src/client/res-body-url-sub.js';

const token = randomUUID();
const ruleSecret = `rule-secret-${randomUUID()}`;
const pool = ['pool-one-aaaaaaaa', 'pool-two-bbbbbbbb', 'pool-three-cccccc'];
let fake: FakeBrokerServer;
let origin: Server;
let originUrl = '';
const seen: Array<{ url: string; headers: IncomingMessage['headers']; body: string }> = [];
const clients: TestClient[] = [];

/** The npm packument Nexus would serve, its tarball URLs naming the origin itself. */
function packument(base: string, count: number): string {
  const versions: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) versions[`2.0.${i}`] = { name: 'pkg', version: `2.0.${i}`, description: 'é✓🚀', dist: { tarball: `${base}/repository/npm-proxy/pkg/-/pkg-2.0.${i}.tgz` } };
  return JSON.stringify({ name: 'pkg', versions });
}

before(async () => {
  fake = await new FakeBrokerServer().start();
  origin = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    seen.push({ url: req.url!, headers: req.headers, body });
    const path = new URL(req.url!, 'http://x').pathname;
    if (path.startsWith('/repository/npm-proxy/')) {
      // The packument in 1-7 byte pieces, each sent on its own: URLs straddle chunk boundaries.
      const text = Buffer.from(packument(originUrl, Number(new URL(req.url!, 'http://x').searchParams.get('n') ?? 20)));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(text.length) });
      const sizes = [1, 7, 3, 5, 2, 6, 4];
      for (let off = 0, i = 0; off < text.length; i++) {
        const n = sizes[i % sizes.length]!;
        res.write(text.subarray(off, off + n));
        off += n;
        if (i % 25 === 0) await sleep(1);
      }
      res.end();
      return;
    }
    if (path === '/tarball') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(`binary ${originUrl}/repository/x`);
      return;
    }
    if (path === '/bitbucket') {
      // Bitbucket Server answers 200 to any PAT; only a valid one gets x-ausername.
      res.writeHead(200, { 'content-type': 'application/json', ...(req.headers.authorization === `Bearer ${pool[0]}` ? { 'x-ausername': 'snyk' } : {}) });
      res.end('{"values":[]}');
      return;
    }
    if (path === '/validate') {
      const ok = req.headers.authorization === `token ${pool[0]}` || req.headers.authorization === `token ${pool[2]}`;
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok }));
      return;
    }
    // Echo: the answer names the credential the origin got, so body logging must mask it.
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ url: req.url, authorization: req.headers.authorization ?? null, xCred: req.headers['x-cred'] ?? null, body }));
  });
  originUrl = `http://127.0.0.1:${await listen(origin, 0, '127.0.0.1')}`;
});

after(async () => {
  for (const c of clients) await c.stop();
  await fake?.stop();
  await closeServer(origin);
  const logs = clients.map((c) => c.lines.join('\n')).join('\n');
  assert.ok(!logs.includes(token), 'broker token in client logs');
  assert.ok(!logs.includes(ruleSecret), 'rule credential in client logs');
  for (const p of pool) assert.ok(!logs.includes(p), 'pooled credential in client logs');
});

async function client(env: Record<string, string>, accept: unknown): Promise<{ tc: TestClient; conn: () => FakeConnection }> {
  const before = fake.open().length;
  const tc = await startTestClient({ BROKER_TOKEN: token, BROKER_SERVER_URL: fake.url, ORIGIN_URL: originUrl, ...env }, accept);
  clients.push(tc);
  await waitFor('two more identified tunnels', () => fake.open().length >= before + 2);
  const conn = () => fake.open().find((c) => c.role === 'primary' && c.identify?.metadata && (c.identify.metadata as { clientId?: string }).clientId === tc.config.clientId)!;
  return { tc, conn };
}

async function relay(conn: FakeConnection, url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  const streamingID = randomUUID();
  fake.emit(conn, 'request', { url, method: init.method ?? 'GET', headers: { 'snyk-request-id': randomUUID(), ...init.headers }, ...(init.body ? { body: init.body } : {}), streamingID, requestId: randomUUID() });
  return waitFor(`response-data for ${url}`, () => fake.responses.get(streamingID));
}

async function checkPackument(body: Buffer, count: number): Promise<void> {
  const doc = JSON.parse(body.toString('utf8')) as { versions: Record<string, { dist: { tarball: string }; description: string }> };
  assert.equal(Object.keys(doc.versions).length, count);
  for (const [v, entry] of Object.entries(doc.versions)) {
    assert.equal(entry.dist.tarball, `${RES_BODY_URL_SUB_TARGET}${token}/npm-proxy/pkg/-/pkg-${v}.tgz`);
    assert.equal(entry.description, 'é✓🚀');
  }
}

test('RES_BODY_URL_SUB: a packument delivered in tiny chunks comes back with every tarball URL through the broker', async () => {
  const { conn } = await client({ RES_BODY_URL_SUB: `${originUrl}/repository` }, { private: [{ method: 'GET', path: '/*', origin: '${ORIGIN_URL}' }], public: [] });
  // Small: read whole, so it gets its exact new content-length.
  const small = await relay(conn(), '/repository/npm-proxy/pkg?n=20');
  assert.equal(small.head.status, 200);
  assert.equal(small.head.headers?.['content-length'], String(small.body.length));
  await checkPackument(small.body, 20);
  // Large (beyond what is read whole): streamed through the rewrite, without the origin's now wrong content-length.
  const large = await relay(conn(), '/repository/npm-proxy/pkg?n=900');
  assert.equal(large.head.status, 200);
  assert.ok(large.body.length > 100_000);
  assert.equal(large.head.headers?.['content-length'], undefined, 'the old content-length would be wrong');
  await checkPackument(large.body, 900);
  // The ack path (one buffered answer) rewrites too.
  const [ack] = (await fake.call(conn(), 'request', [{ url: '/repository/npm-proxy/pkg?n=900', method: 'GET', headers: {}, streamingID: '' }])) as [{ status: number; body: string }];
  assert.equal(ack.status, 200);
  await checkPackument(Buffer.from(ack.body), 900);
  // Non-JSON answers are left alone.
  const bin = await relay(conn(), '/tarball');
  assert.equal(bin.body.toString(), `binary ${originUrl}/repository/x`);
});

test('credential pools: each request takes the next value, and x-broker-var-sub gets the same one as the rule', async () => {
  const { conn } = await client(
    { POOLED_TOKEN_POOL: pool.join(', ') },
    { private: [{ method: 'any', path: '/echo/*', origin: '${ORIGIN_URL}', auth: { scheme: 'token', token: '${POOLED_TOKEN}' } }], public: [] },
  );
  const got: Array<{ authorization: string; xCred: string }> = [];
  for (let i = 0; i < 4; i++) {
    const r = await relay(conn(), `/echo/${i}`, { headers: { 'x-broker-var-sub': 'x-cred', 'x-cred': 'pat ${POOLED_TOKEN}' } });
    got.push(JSON.parse(r.body.toString()) as { authorization: string; xCred: string });
  }
  assert.deepEqual(got.map((g) => g.authorization), [pool[0], pool[1], pool[2], pool[0]].map((p) => `token ${p}`));
  assert.deepEqual(got.map((g) => g.xCred), got.map((g) => g.authorization.replace('token', 'pat')));
});

test('/systemcheck checks every pool value and reports each, masked; 500 when one fails', async () => {
  const { tc } = await client(
    { BROKER_CLIENT_VALIDATION_URL: `${originUrl}/validate`, BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER: 'token $GITHUB_TOKEN', GITHUB_TOKEN_POOL: pool.join(',') },
    { private: [], public: [] },
  );
  const res = await request(`${tc.url}/systemcheck`);
  assert.equal(res.statusCode, 500);
  const list = (await res.body.json()) as Array<{ ok: boolean; maskedCredentials: string; brokerClientValidationUrlStatusCode: number; error?: string }>;
  assert.deepEqual(list.map((r) => r.ok), [true, false, true]);
  assert.deepEqual(list.map((r) => r.maskedCredentials), pool.map((p) => `${p.slice(0, 3)}***${p.slice(-3)}`));
  assert.equal(list[1]!.brokerClientValidationUrlStatusCode, 401);
  assert.equal(list[1]!.error, 'Failed due to invalid credentials');
  assert.deepEqual(seen.filter((s) => s.url === '/validate').slice(-3).map((s) => s.headers.authorization), pool.map((p) => `token ${p}`));
});

test('/systemcheck with BITBUCKET_PAT: a 200 without x-ausername is a failed credential, as in snyk-broker', async () => {
  const { tc } = await client(
    { BITBUCKET_PAT: pool[0]!, BROKER_CLIENT_VALIDATION_URL: `${originUrl}/bitbucket`, BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER_POOL: `Bearer ${pool[0]},Bearer ${pool[1]}` },
    { private: [], public: [] },
  );
  const res = await request(`${tc.url}/systemcheck`);
  assert.equal(res.statusCode, 500);
  const list = (await res.body.json()) as Array<{ ok: boolean; brokerClientValidationUrlStatusCode: number; error?: string }>;
  assert.deepEqual(list.map((r) => r.ok), [true, false]);
  assert.equal(list[1]!.brokerClientValidationUrlStatusCode, 401);
  assert.match(list[1]!.error!, /Bitbucket PAT/);
});

test('INSECURE_DOWNSTREAM: an https rule origin and validation URL are called over http', async () => {
  const httpsOrigin = originUrl.replace('http://', 'https://');
  const { tc, conn } = await client(
    { INSECURE_DOWNSTREAM: 'true', SECURE_ORIGIN: httpsOrigin, BROKER_CLIENT_VALIDATION_URL: `${httpsOrigin}/validate`, BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER: `token ${pool[0]}` },
    { private: [{ method: 'GET', path: '/echo/*', origin: '${SECURE_ORIGIN}' }], public: [] },
  );
  const r = await relay(conn(), '/echo/insecure');
  assert.equal(r.head.status, 200);
  assert.equal((JSON.parse(r.body.toString()) as { url: string }).url, '/echo/insecure');
  const sc = await request(`${tc.url}/systemcheck`);
  assert.equal(sc.statusCode, 200);
  await sc.body.dump();
  assert.ok(tc.logs().some((e) => e.level === 'warn' && e.msg === 'Caution! Running in insecure downstream mode, making downstream calls over http, data is not encrypted.'));
});

test('LOG_ENABLE_BODY: bodies are logged at debug, and credentials in them are still masked', async () => {
  const { tc, conn } = await client(
    { LOG_ENABLE_BODY: 'true', RULE_SECRET: ruleSecret },
    { private: [{ method: 'any', path: '/echo/*', origin: '${ORIGIN_URL}', auth: { scheme: 'bearer', token: '${RULE_SECRET}' } }], public: [] },
  );
  const r = await relay(conn(), '/echo/logged', { method: 'POST', body: JSON.stringify({ note: 'request body text', leaked: ruleSecret, broker: token }), headers: { 'content-type': 'application/json' } });
  assert.equal(r.head.status, 200);
  assert.ok(r.body.toString().includes(ruleSecret), 'the origin echoed the credential (the test would prove nothing otherwise)');
  const reqLine = await tc.waitForLog('relaying request body');
  assert.match(String(reqLine.requestBody), /request body text/);
  const resLine = await tc.waitForLog('origin answer body', (e) => String(e.url) === '/echo/logged');
  assert.match(String(resLine.responseBody), /Bearer \[REDACTED\]/);
  assert.match(String(resLine.responseBody), /request body text/);
  const text = tc.lines.join('\n');
  assert.ok(!text.includes(ruleSecret) && !text.includes(token));
});

test('without LOG_ENABLE_BODY no body is logged', async () => {
  const { tc, conn } = await client({}, { private: [{ method: 'any', path: '/echo/*', origin: '${ORIGIN_URL}' }], public: [] });
  await relay(conn(), '/echo/quiet', { method: 'POST', body: '{"note":"quiet body"}' });
  await tc.waitForLog('relayed a request', (e) => e.url === '/echo/quiet');
  assert.ok(!tc.lines.join('\n').includes('quiet body'));
});

test('each unimplemented Snyk variable gets one warning naming it; implemented ones none', async () => {
  const { tc } = await client(
    { UNIVERSAL_BROKER_ENABLED: 'true', BROKER_CLIENT_CONFIGURATION_GITHUB: '{}', GIT_CLIENT_URL: 'http://code-agent:3000', SNYK_CLIENT_SECRET: 'x', MAX_RETRY: '3', LOG_INFO_VERBOSE: 'true', UNRELATED_VAR: 'x', CLIENT_ID: '' },
    { private: [], public: [] },
  );
  const warned = tc.logs().filter((e) => e.level === 'warn' && /does not implement/.test(String(e.msg)));
  const names = warned.map((e) => e.variable).sort();
  assert.deepEqual(names, ['BROKER_CLIENT_CONFIGURATION_GITHUB', 'GIT_CLIENT_URL', 'LOG_INFO_VERBOSE', 'MAX_RETRY', 'SNYK_CLIENT_SECRET', 'UNIVERSAL_BROKER_ENABLED']);
  for (const e of warned) {
    assert.ok(String(e.msg).startsWith(String(e.variable)), 'the message names the variable');
    assert.ok(String(e.reason).length > 10);
  }
});
