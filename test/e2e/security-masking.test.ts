import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { request } from 'undici';
import { hashToken } from '../../src/protocol/index.js';
import { ProcessGroup } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { writeAcceptFile } from '../support/client-harness.js';

/**
 * The masking sweep: a dispatcher, a server and an HA client run at debug level with a known
 * token and credentials (GITHUB_TOKEN, basic-auth passwords in origin and validation URLs, a
 * proxy password, BROKER_INTERNAL_SECRET). The error paths and every status endpoint are
 * exercised; then everything the processes wrote and every status line, header and body they
 * answered is scanned for the raw values (and the base64 forms of the basic-auth pairs).
 */
const group = new ProcessGroup();
const token = randomUUID();
const secret = (label: string) => `${label}-${randomBytes(12).toString('hex')}`;
const S = {
  BROKER_TOKEN: token,
  GITHUB_TOKEN: secret('ghp'),
  ORIGIN_PASSWORD: secret('originpw'),
  VALIDATION_PASSWORD: secret('validpw'),
  VALIDATION_BASIC: `checker:${secret('basicpw')}`,
  PROXY_PASSWORD: secret('proxypw'),
  BROKER_INTERNAL_SECRET: secret('internal'),
};
/** What must never appear: each raw value, plus the base64 forms a Basic header would carry. */
const NEEDLES: Record<string, string> = {
  ...S,
  'base64(origin user:password)': Buffer.from(`gh:${S.ORIGIN_PASSWORD}`).toString('base64'),
  'base64(validation user:password)': Buffer.from(`validator:${S.VALIDATION_PASSWORD}`).toString('base64'),
  'base64(BROKER_CLIENT_VALIDATION_BASIC_AUTH)': Buffer.from(S.VALIDATION_BASIC).toString('base64'),
  'token without dashes': token.replace(/-/g, ''),
};

/** Every answer seen by the test: status, headers and body as text. */
const answers: Array<{ what: string; text: string }> = [];
let origin: Server;
/** Every request head the origin got (headers as JSON), to prove the internal secret never reaches it. */
const originHeads: string[] = [];
let originUrl = '';
let deadPort = 0;
const ports = { dispatcher: 0, server: 0, client: 0 };
let clientAccept = '';

function internalHeader(): Record<string, string> {
  return { 'x-broker-internal-secret': S.BROKER_INTERNAL_SECRET };
}

async function call(what: string, url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  const r = await request(url, { method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body, headersTimeout: 30_000, bodyTimeout: 30_000 });
  const body = await r.body.text();
  const headerText = Object.entries(r.headers).map(([k, v]) => `${k}: ${String(v)}`).join('\n');
  answers.push({ what, text: `${r.statusCode}\n${headerText}\n\n${body}` });
  return { status: r.statusCode, headers: r.headers, body };
}

before(async () => {
  // The origin answers without echoing what it got (echoing credentials back is the origin's business).
  origin = createServer((req, res) => {
    req.resume();
    originHeads.push(`${req.url} ${JSON.stringify(req.headers)}`);
    const auth = req.headers.authorization ?? '';
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, path: req.url, authorized: auth.length > 0 }));
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', () => resolve()));
  originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  deadPort = await freePort();
  for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await freePort();

  const serverAccept = await writeAcceptFile({
    public: ['gh', 'basic', 'down', 'client-blocked'].map((p) => ({ method: 'GET', path: `/${p}/*` })),
    private: [],
  });
  clientAccept = await writeAcceptFile({
    private: [
      { method: 'GET', path: '/gh/*', origin: '${ORIGIN_URL}', auth: { scheme: 'token', token: '${GITHUB_TOKEN}' } },
      { method: 'GET', path: '/basic/*', origin: `http://gh:\${ORIGIN_PASSWORD}@127.0.0.1:${(origin.address() as AddressInfo).port}` },
      { method: 'GET', path: '/down/*', origin: `http://gh:\${ORIGIN_PASSWORD}@127.0.0.1:${deadPort}` },
    ],
    public: [],
  });
  const dispatcher = group.broker('dispatcher', 'dispatcher', { PORT: String(ports.dispatcher), DISPATCHER_HOST: '127.0.0.1', BROKER_INTERNAL_SECRET: S.BROKER_INTERNAL_SECRET, LOG_LEVEL: 'debug' });
  await dispatcher.waitForOutput('dispatcher listening', 30_000);
  const server = group.broker('server', 'server', {
    PORT: String(ports.server),
    BROKER_SERVER_HOST: '127.0.0.1',
    BROKER_SERVER_ID: '0',
    BROKER_SERVER_PEER_URL: `http://127.0.0.1:${ports.server}`,
    DISPATCHER_URL: `http://127.0.0.1:${ports.dispatcher}`,
    BROKER_INTERNAL_SECRET: S.BROKER_INTERNAL_SECRET,
    ACCEPT: serverAccept,
    LOG_LEVEL: 'debug',
  });
  await server.waitForOutput('broker server listening', 30_000);
  group.broker('client', 'client', {
    BROKER_TOKEN: token,
    BROKER_SERVER_URL: `http://127.0.0.1:${ports.server}`,
    BROKER_HA_MODE_ENABLED: 'true',
    BROKER_DISPATCHER_BASE_URL: `http://127.0.0.1:${ports.dispatcher}`,
    PORT: String(ports.client),
    ACCEPT: clientAccept,
    ORIGIN_URL: originUrl,
    GITHUB_TOKEN: S.GITHUB_TOKEN,
    ORIGIN_PASSWORD: S.ORIGIN_PASSWORD,
    BROKER_CLIENT_VALIDATION_URL: `http://validator:${S.VALIDATION_PASSWORD}@127.0.0.1:${deadPort}/validate`,
    BROKER_CLIENT_VALIDATION_BASIC_AUTH: S.VALIDATION_BASIC,
    // A proxy nothing uses (NO_PROXY covers every target): its password must still never show.
    HTTP_PROXY: `http://proxyuser:${S.PROXY_PASSWORD}@127.0.0.1:${deadPort}`,
    NO_PROXY: '127.0.0.1,localhost',
    PREFLIGHT_CHECKS_ENABLED: 'true',
    LOG_LEVEL: 'debug',
  });
  await waitFor('the client connected', async () => (await call('server connection-status', `http://127.0.0.1:${ports.server}/connection-status/${token}`)).status === 200, { timeoutMs: 60_000 });
});

after(async () => {
  await group.stopAll();
  await new Promise<void>((resolve) => (origin ? origin.close(() => resolve()) : resolve()));
});

test('error paths and status endpoints of all three programs', async () => {
  const server = `http://127.0.0.1:${ports.server}`;
  const local = `http://127.0.0.1:${ports.client}`;
  const dispatcher = `http://127.0.0.1:${ports.dispatcher}`;
  const internal = { 'x-broker-internal-secret': S.BROKER_INTERNAL_SECRET };

  const gh = await call('relayed with token auth', `${server}/broker/${token}/gh/repos`);
  assert.equal(gh.status, 200, gh.body);
  assert.equal((JSON.parse(gh.body) as { authorized: boolean }).authorized, true);
  assert.equal((await call('relayed with basic auth in the origin', `${server}/broker/${token}/basic/x`)).status, 200);
  const down = await call('origin down', `${server}/broker/${token}/down/x`);
  assert.equal(down.status, 502, down.body);
  assert.equal((await call('unknown token', `${server}/broker/${randomUUID()}/gh/x`)).status, 404);
  assert.equal((await call('server filter blocked', `${server}/broker/${token}/server-blocked/x`)).status, 401);
  assert.equal((await call('client filter blocked', `${server}/broker/${token}/client-blocked/x`)).status, 401);
  assert.equal((await call('not a broker path', `${server}/broker/`)).status, 400);
  assert.equal((await call('forged peer request', `${server}/broker/${token}/gh/x`, { headers: { 'x-broker-forwarded-by': '9' } })).status, 401);
  // A genuine peer hop (right secret) is relayed, and the secret header goes no further.
  const peerHop = await call('peer request with the secret', `${server}/broker/${token}/gh/peer-hop`, { headers: { 'x-broker-forwarded-by': '9', ...internalHeader() } });
  assert.equal(peerHop.status, 200, peerHop.body);
  const atOrigin = originHeads.filter((h) => h.startsWith('/peer-hop') || h.includes('/peer-hop '));
  assert.equal(atOrigin.length, 1, originHeads.join('\n'));
  assert.ok(!/x-broker-internal-secret/i.test(atOrigin[0]!) && !atOrigin[0]!.includes(S.BROKER_INTERNAL_SECRET), atOrigin[0]);
  for (const path of ['/healthcheck', '/readyz', '/metrics', '/connections-status', `/connection-status/${token}`]) await call(`server ${path}`, `${server}${path}`);
  for (const path of ['/healthcheck', '/systemcheck', '/health/checks', '/readyz', '/metrics', '/filters', '/not-a-route']) await call(`client ${path}`, `${local}${path}`);
  for (const path of ['/healthcheck', '/readyz', '/metrics', '/internal/brokerservers', '/internal/connections', `/internal/tokens/${hashToken(token)}/connections`]) await call(`dispatcher ${path}`, `${dispatcher}${path}`, { headers: internal });
  await call('dispatcher internal without the secret', `${dispatcher}/internal/brokerservers`);

  // A reload to an origin that is not a URL once substituted (it embeds a credential): refused
  // naming the rule, the old rules stay, and nothing echoes the origin with its password.
  await writeFile(clientAccept, JSON.stringify({ private: [{ method: 'GET', path: '/gh/*', origin: 'http://gh:${ORIGIN_PASSWORD}@[bad-host' }], public: [] }));
  const unusable = await call('client filters reload to an unusable origin', `${local}/filters`, { method: 'POST' });
  assert.equal(unusable.status, 500, unusable.body);
  assert.match(unusable.body, /origin .* is not a URL/);
  const stillServed = await call('relay after the refused reload (old rules)', `${server}/broker/${token}/gh/x`);
  assert.equal(stillServed.status, 200, stillServed.body);
  // A reload with a malformed accept file (a path that is not a string; a missing one is '/', as in snyk-broker): refused, the old rules stay.
  await writeFile(clientAccept, JSON.stringify({ private: [{ method: 'GET', path: 42, origin: 'http://gh:${ORIGIN_PASSWORD}@127.0.0.1' }], public: [] }));
  const reload = await call('client filters reload with a malformed accept file', `${local}/filters`, { method: 'POST' });
  assert.equal(reload.status, 500, reload.body);

  // The same broken file at start: exit 2 naming the problem, credentials not echoed.
  const bad = group.broker('client with a bad accept', 'client', { BROKER_TOKEN: token, BROKER_SERVER_URL: `http://u:${S.PROXY_PASSWORD}@127.0.0.1:1`, ACCEPT: clientAccept, ORIGIN_PASSWORD: S.ORIGIN_PASSWORD, GITHUB_TOKEN: S.GITHUB_TOKEN, PORT: '0' });
  assert.equal(await bad.exited, 2);
  assert.match(bad.output(), /ACCEPT|accept/);
  // The connections-status contract: masked (first and last 4 characters) and hashed, never whole.
  const status = answers.find((a) => a.what === 'server /connections-status')!.text;
  assert.ok(status.includes(`${token.slice(0, 4)}-...-${token.slice(-4)}`), status);
  assert.ok(status.includes(hashToken(token)), status);
});

test('no token or credential in any process output or any answer', async () => {
  // Stopped first so drain and shutdown lines are scanned too.
  await group.stopAll();
  const sources = [...group.all().map((p) => ({ what: `output of ${p.name}`, text: p.output() })), ...answers];
  let bytes = 0;
  let lines = 0;
  const leaks: string[] = [];
  for (const s of sources) {
    bytes += Buffer.byteLength(s.text);
    lines += s.text.split('\n').length;
    const lower = s.text.toLowerCase();
    for (const [name, value] of Object.entries(NEEDLES)) {
      if (lower.includes(value.toLowerCase())) {
        const at = lower.indexOf(value.toLowerCase());
        leaks.push(`${name} in ${s.what}: …${s.text.slice(Math.max(0, at - 120), at + value.length + 40)}…`);
      }
    }
  }
  // For a look at what was scanned: SECURITY_SWEEP_DUMP=/tmp/x keeps every source there.
  if (process.env.SECURITY_SWEEP_DUMP) {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(process.env.SECURITY_SWEEP_DUMP, { recursive: true });
    await Promise.all(sources.map((src, i) => writeFile(`${process.env.SECURITY_SWEEP_DUMP}/${String(i).padStart(2, '0')}-${src.what.replace(/[^a-z0-9-]+/gi, '_')}.txt`, src.text)));
  }
  console.log(`masking sweep: scanned ${sources.length} sources (${group.all().length} processes, ${answers.length} answers), ${bytes} bytes, ${lines} lines, ${Object.keys(NEEDLES).length} needles; leaks: ${leaks.length}`);
  assert.ok(bytes > 10_000, `suspiciously little scanned (${bytes} bytes)`);
  assert.deepEqual(leaks, []);
});
