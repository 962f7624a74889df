// Mandatory-auth mode (BROKER_SERVER_MANDATORY_AUTH_ENABLED, universal-broker.md §4): tunnel
// handshakes validated by a fake validation endpoint, answer uploads tied to the tunnel's JWT azp,
// auth refreshes, the stale-credential watchdog, and no bearer token in any log line.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/logger.js';
import { encodeResponseHead } from '../../src/protocol/index.js';
import { FAILURES } from '../../src/protocol/failures.js';
import { Connection, type ConnectionHooks } from '../../src/server/connection.js';
import { staleTunnels } from '../../src/server/stale-credentials.js';
import { jwtAzp, bearerCredentials } from '../../src/server/bearer.js';
import { FakeTunnelClient } from '../support/fake-tunnel-client.js';
import { FakeValidation, unsignedJwt } from '../support/fake-validation.js';
import { startInProcessServer, type InProcessServer } from '../support/in-process-server.js';
import { platform } from '../support/platform-request.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

const T = '7f1c2a9e-3b4d-4e5f-8a6b-9c0d1e2f3a4b';
const GOOD_JWT = unsignedJwt({ azp: 'app-client-1', sub: 'deployment' });
const REFRESH_JWT = unsignedJwt({ azp: 'internal-gateway', sub: 'refresh' });
const OTHER_JWT = unsignedJwt({ azp: 'app-client-2' });
const BAD_BEARER = 'bearer not-a-valid-token-value-123';
const GOOD = `Bearer ${GOOD_JWT}`;
const REFRESH = `bearer ${REFRESH_JWT}`;

const servers: InProcessServer[] = [];
const clients: FakeTunnelClient[] = [];
const endpoints: FakeValidation[] = [];
const logLines: string[] = [];
after(async () => {
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.stop()));
  await Promise.all(endpoints.map((e) => e.stop()));
});

function captureLogger() {
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) logLines.push(l);
      cb();
    },
  });
  return createLogger({ level: 'trace', destination: stream });
}

async function endpoint(good: string[] = [GOOD]): Promise<FakeValidation> {
  const e = await new FakeValidation(good).start();
  endpoints.push(e);
  return e;
}

async function authServer(env: Record<string, string>) {
  const s = await startInProcessServer({ BROKER_SERVER_MANDATORY_AUTH_ENABLED: 'true', GATEWAY_HEADER_NAME: 'x-gateway-auth', GATEWAY_HEADER_VALUE: 'gateway-header-secret', BROKER_SERVER_AUTH_TIMEOUT_MS: '500', ...env }, undefined, captureLogger());
  servers.push(s);
  return s;
}

/** A gateway (handshakes) and an authorization service (refreshes), and a server using both. */
async function setup(env: Record<string, string> = {}) {
  const gateway = await endpoint([GOOD]);
  const authService = await endpoint([REFRESH]);
  const s = await authServer({ GATEWAY_HOSTNAME: `${gateway.url}/`, AUTHORIZATION_SERVICE: authService.url, ...env });
  return { s, gateway, authService };
}

async function connect(s: InProcessServer, options: ConstructorParameters<typeof FakeTunnelClient>[2] = {}): Promise<FakeTunnelClient> {
  const c = new FakeTunnelClient(s.url, T, { clientId: 'fake-0', ...options, headers: { authorization: GOOD, 'x-forwarded-for': '203.0.113.7', ...options.headers } });
  clients.push(c);
  await c.opened;
  await waitFor('the tunnel is ready', () => s.server.pool.members(T).some((m) => m.state === 'ready' && m.identity?.clientId === (options.clientId ?? 'fake-0')));
  return c;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A websocket handshake under /primus/<T>/ and the server's answer (101 or the refusal). */
function upgradeAnswer(serverUrl: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${serverUrl}/primus/${T}/?connection_role=primary&EIO=4&transport=websocket`, {
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': randomBytes(16).toString('base64'), 'sec-websocket-version': '13', ...headers },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: 101, headers: res.headers, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function assertRefused(a: Answer, reason: string, message?: string): void {
  assert.equal(a.status, 401, a.body);
  assert.equal(a.headers['www-authenticate'], 'Bearer');
  assert.equal(a.headers['x-broker-failure'], reason);
  if (message !== undefined) assert.deepEqual(JSON.parse(a.body), { error: message });
}

/** An answer upload to /hidden/brokers/response-data/, as a Universal Broker client posts it. */
function postHidden(serverUrl: string, streamingID: string, authorization: string | undefined, status: number, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const url = `${serverUrl}/hidden/brokers/response-data/${T}/${streamingID}?connection_role=primary`;
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/vnd.broker.stream+octet-stream', ...(authorization ? { authorization } : {}) } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(Buffer.concat([encodeResponseHead({ status }), Buffer.from(body)]));
  });
}

function refresh(serverUrl: string, authorization: string | undefined, clientId: string, role = 'primary'): Promise<Answer> {
  return platform(`${serverUrl}/hidden/brokers/connections/${T}/auth/refresh?connection_role=${role}`, {
    method: 'POST',
    headers: { 'content-type': 'application/vnd.api+json', ...(authorization ? { authorization } : {}) },
    body: JSON.stringify({ data: { type: 'broker_connection', attributes: { broker_client_id: clientId } } }),
  });
}

function streamingIdOf(r: { args: unknown[] }): string {
  return (r.args[0] as { streamingID: string }).streamingID;
}

test('bearer helpers: credentials after the first space of a bearer header; azp decoded from a JWT, nothing from anything else', () => {
  assert.equal(bearerCredentials(`BEARER ${GOOD_JWT}`), GOOD_JWT);
  assert.equal(bearerCredentials('Basic abc'), undefined);
  assert.equal(bearerCredentials('bearer '), undefined);
  assert.equal(bearerCredentials(undefined), undefined);
  assert.equal(jwtAzp(GOOD_JWT), 'app-client-1');
  assert.equal(jwtAzp(`Bearer ${GOOD_JWT}`), 'app-client-1');
  assert.equal(jwtAzp(unsignedJwt({ sub: 'no azp' })), '');
  assert.equal(jwtAzp(unsignedJwt({ azp: 7 })), '');
  assert.equal(jwtAzp('not.a.jwt!'), '');
  assert.equal(jwtAzp('only-one-part'), '');
  assert.equal(jwtAzp(`${Buffer.from('{').toString('base64url')}.${Buffer.from('{"azp":"x"}').toString('base64url')}.`), '', 'a header that is not JSON');
});

test('a handshake with a good bearer is validated (request as snyk-broker sends it), the tunnel relays, and answers go to /hidden/brokers/response-data with the azp', async () => {
  const { s, gateway, authService } = await setup();
  const c = await connect(s);
  assert.equal(gateway.calls.length, 1);
  assert.equal(authService.calls.length, 0, 'handshakes go to GATEWAY_HOSTNAME');
  const call = gateway.calls[0]!;
  assert.equal(call.method, 'POST');
  assert.equal(call.url, `/hidden/brokers/connections/${T}/auth/validate?version=2024-02-08~experimental`);
  assert.equal(call.headers.authorization, GOOD, 'the authorization header is passed through as it came');
  assert.equal(call.headers['content-type'], 'application/vnd.api+json');
  assert.equal(call.headers['x-gateway-auth'], 'gateway-header-secret');
  assert.equal(call.headers['x-forwarded-for'], '203.0.113.7');
  assert.deepEqual(JSON.parse(call.body), { data: { type: 'broker_connection', attributes: { broker_client_id: 'fake-0' } } });
  const conn = s.server.pool.members(T)[0]!;
  assert.equal(conn.credentials?.brokerAppClientId, 'app-client-1');
  assert.equal(conn.credentials?.brokerClientId, 'fake-0');
  assert.equal(conn.credentials?.role, 'primary');
  assert.ok(Math.abs(conn.credentials!.credsValidationTime - Date.now()) < 10_000);

  const answer = platform(`${s.url}/broker/${T}/echo/one`);
  const r = await c.nextRequest(0);
  const id = streamingIdOf(r);
  const plain = await platform(`${s.url}/response-data/${T}/${id}`, { method: 'POST', body: 'x' });
  assert.equal(plain.status, 404, 'under mandatory auth /response-data is not served (no upload escapes the check)');
  const missing = await postHidden(s.url, id, undefined, 200, 'forged');
  assert.equal(missing.status, 401);
  assert.equal(missing.headers['x-broker-failure'], FAILURES.AUTH_REQUIRED.reason);
  const wrong = await postHidden(s.url, id, `Bearer ${OTHER_JWT}`, 200, 'forged');
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers['x-broker-failure'], FAILURES.AUTH_INVALID.reason);
  assert.equal(wrong.headers['www-authenticate'], 'Bearer');
  assert.deepEqual(JSON.parse(wrong.body), { message: 'Invalid Broker client credentials.' });
  const right = await postHidden(s.url, id, GOOD, 200, 'answered by the right client');
  assert.equal(right.status, 200);
  const got = await answer;
  assert.equal(got.status, 200);
  assert.equal(got.body, 'answered by the right client', 'refused uploads do not answer; the right one still can');
  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  assert.match(metrics, /broker_server_auth_checks_total\{kind="response-data",outcome="auth-required"\} 1/);
  assert.match(metrics, /broker_server_auth_checks_total\{kind="response-data",outcome="auth-invalid"\} 1/);
  assert.match(metrics, /broker_server_auth_checks_total\{kind="response-data",outcome="accepted"\} 1/);
});

test('a polling handshake is validated too; requests of its session are not validated again', async () => {
  const { s, gateway } = await setup();
  const refused = await platform(`${s.url}/primus/${T}/?EIO=4&transport=polling`, { headers: { 'x-snyk-broker-client-id': 'poller', authorization: BAD_BEARER } });
  assertRefused(refused, FAILURES.AUTH_INVALID.reason, 'Invalid credentials.');
  const open = await platform(`${s.url}/primus/${T}/?EIO=4&transport=polling`, { headers: { 'x-snyk-broker-client-id': 'poller', authorization: GOOD } });
  assert.equal(open.status, 200, open.body);
  assert.match(open.body, /^0\{/);
  const sid = (JSON.parse(open.body.slice(1)) as { sid: string }).sid;
  const calls = gateway.calls.length;
  const poll = await platform(`${s.url}/primus/${T}/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`);
  assert.equal(poll.status, 200, 'a request of the validated session needs no bearer');
  assert.equal(gateway.calls.length, calls);
});

test('a missing bearer or client id is refused with 401 and WWW-Authenticate without asking the endpoint; a bad bearer after asking', async () => {
  const { s, gateway } = await setup();
  assertRefused(await upgradeAnswer(s.url, { 'x-snyk-broker-client-id': 'c1' }), FAILURES.AUTH_REQUIRED.reason, 'Missing required authorization header.');
  assertRefused(await upgradeAnswer(s.url, { authorization: GOOD }), FAILURES.AUTH_REQUIRED.reason, 'Missing required authorization header.');
  assertRefused(await upgradeAnswer(s.url, { authorization: `Basic ${Buffer.from('a:b').toString('base64')}`, 'x-snyk-broker-client-id': 'c1' }), FAILURES.AUTH_REQUIRED.reason);
  assert.equal(gateway.calls.length, 0);
  assertRefused(await upgradeAnswer(s.url, { authorization: BAD_BEARER, 'x-snyk-broker-client-id': 'c1' }), FAILURES.AUTH_INVALID.reason, 'Invalid credentials.');
  // HTTP trims the value to `Bearer`: as in snyk-broker, that word itself is then sent for validation.
  assertRefused(await upgradeAnswer(s.url, { authorization: 'Bearer ', 'x-snyk-broker-client-id': 'c1' }), FAILURES.AUTH_INVALID.reason, 'Invalid credentials.');
  assert.equal(gateway.calls.length, 2);
  assert.equal((await upgradeAnswer(s.url, { authorization: GOOD, 'x-snyk-broker-client-id': 'c1' })).status, 101, 'the same request with the good bearer passes');
  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  assert.match(metrics, /broker_server_auth_checks_total\{kind="handshake",outcome="auth-required"\} 3/);
  assert.match(metrics, /broker_server_auth_checks_total\{kind="handshake",outcome="accepted"\} 1/);
});

test('the validation endpoint down or hanging: 401 auth-unavailable within the timeout, and the server keeps serving meanwhile', async () => {
  const down = await authServer({ GATEWAY_HOSTNAME: `http://127.0.0.1:${await freePort()}` });
  assertRefused(await upgradeAnswer(down.url, { authorization: GOOD, 'x-snyk-broker-client-id': 'c1' }), FAILURES.AUTH_UNAVAILABLE.reason);
  const hanging = await endpoint([GOOD]);
  hanging.hang = true;
  const slow = await authServer({ GATEWAY_HOSTNAME: hanging.url, BROKER_SERVER_AUTH_TIMEOUT_MS: '700' });
  const started = Date.now();
  const pending = upgradeAnswer(slow.url, { authorization: GOOD, 'x-snyk-broker-client-id': 'c1' });
  await waitFor('the validation call arrives', () => hanging.calls.length === 1);
  const live = await platform(`${slow.url}/healthcheck`);
  assert.equal(live.status, 200, 'a validation in flight does not block the server');
  assertRefused(await pending, FAILURES.AUTH_UNAVAILABLE.reason);
  const took = Date.now() - started;
  assert.ok(took >= 600 && took < 5000, `refused after ${took} ms`);
});

test('auth refresh: 201 moves the validation time on (validated by AUTHORIZATION_SERVICE); unknown client id or role: 401 and no call', async () => {
  const { s, gateway, authService } = await setup();
  const c = await connect(s);
  const conn = s.server.pool.members(T)[0]!;
  conn.credentials!.credsValidationTime = 0;
  const ok = await refresh(s.url, REFRESH, 'fake-0');
  assert.equal(ok.status, 201, ok.body);
  assert.equal(ok.body, 'OK');
  assert.ok(conn.credentials!.credsValidationTime > 0, 'credsValidationTime updated');
  assert.equal(authService.calls.length, 1);
  assert.equal(gateway.calls.length, 1, 'only the handshake went to the gateway');
  const call = authService.calls[0]!;
  assert.equal(call.url, `/hidden/brokers/connections/${T}/auth/validate?version=2024-02-08~experimental`);
  assert.equal(call.headers.authorization, REFRESH);
  assert.deepEqual(JSON.parse(call.body), { data: { type: 'broker_connection', attributes: { broker_client_id: 'fake-0' } } });
  for (const [id, role] of [['nobody', 'primary'], ['fake-0', 'secondary']] as const) {
    const unknown = await refresh(s.url, REFRESH, id, role);
    assert.equal(unknown.status, 401);
    assert.equal(unknown.headers['x-broker-failure'], FAILURES.AUTH_UNKNOWN_TUNNEL.reason);
  }
  assert.equal(authService.calls.length, 1);
  const bad = await platform(`${s.url}/hidden/brokers/connections/${T}/auth/refresh?connection_role=primary`, { method: 'POST', headers: { authorization: REFRESH }, body: '{not json' });
  assert.equal(bad.status, 400);
  const huge = await platform(`${s.url}/hidden/brokers/connections/${T}/auth/refresh?connection_role=primary`, { method: 'POST', headers: { authorization: REFRESH, 'content-type': 'application/vnd.api+json' }, body: 'x'.repeat(70 * 1024) });
  assert.equal(huge.status, 413);
  assert.equal(huge.headers['x-broker-failure'], FAILURES.BODY_TOO_LARGE.reason);
  assert.equal(conn.state, 'ready', 'the tunnel is untouched by refreshes that named no tunnel of it');
  c.close();
});

test('auth refresh refused by the authorization service (or without a bearer): 401 and the tunnel is ended', async () => {
  const { s } = await setup();
  for (const [clientId, authorization, reason] of [
    ['fake-a', 'Bearer refresh-that-the-service-refuses', FAILURES.AUTH_INVALID.reason],
    ['fake-b', undefined, FAILURES.AUTH_REQUIRED.reason],
  ] as const) {
    const c = await connect(s, { clientId });
    const res = await refresh(s.url, authorization, clientId);
    assert.equal(res.status, 401);
    assert.equal(res.headers['x-broker-failure'], reason);
    assert.equal(res.headers['www-authenticate'], 'Bearer');
    await c.waitFor('primus::server::close', () => c.messages.find((m) => m.kind === 'server-close'));
    await Promise.race([c.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('tunnel not closed')), 5000).unref())]);
    await waitFor('the tunnel leaves the pool', () => !s.server.pool.members(T).some((m) => m.identity?.clientId === clientId));
  }
});

test('the watchdog ends a tunnel whose credentials went stale (STALE_CONNECTIONS_CLEANUP_FREQUENCY)', async () => {
  const { s } = await setup({ STALE_CONNECTIONS_CLEANUP_FREQUENCY: '400' });
  const c = await connect(s);
  await Promise.race([c.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('stale tunnel not ended')), 10_000).unref())]);
  assert.ok(c.messages.some((m) => m.kind === 'server-close'), 'told not to come back, as snyk-broker ends the socket');
  await waitFor('the pool is empty', () => s.server.pool.members(T).length === 0);
  assert.ok(logLines.some((l) => l.includes('stale auth')));
});

test('staleTunnels: judged from credsValidationTime against the limit; tunnels without credentials are not judged', () => {
  const hooks = { onIdentify() {}, onEvent() {}, onPing() {}, onBadFrame() {}, onAnswer() {}, onClosed() {} } as ConnectionHooks;
  const make = (validatedAt: number | undefined) => {
    const conn = new Connection({ send() {}, close() {} }, T, 'c', 'primary', hooks, 1024);
    if (validatedAt !== undefined) conn.credentials = { brokerClientId: 'c', role: 'primary', brokerAppClientId: 'a', credsValidationTime: validatedAt };
    return conn;
  };
  const now = 1_000_000;
  const [old, edge, fresh, none] = [make(now - 5000), make(now - 1000), make(now - 999), make(undefined)];
  assert.deepEqual(staleTunnels([old!, edge!, fresh!, none!], now, 1000), [old, edge]);
  edge!.closed('gone');
  assert.deepEqual(staleTunnels([old!, edge!], now, 1000), [old], 'closed tunnels are not ended twice');
});

test('GET /service/<identifier>/config/reload is relayed as a service event and the ack (snyk-broker shape) comes back', async () => {
  const { s } = await setup();
  const c = await connect(s);
  const answer = platform(`${s.url}/service/${T}/config/reload`);
  const event = await c.waitFor('service event', () => c.messages.find((m) => m.kind === 'event' && m.name === 'service'));
  assert.ok(event.kind === 'event' && event.id !== undefined);
  const sent = event.args[0] as { url: string; method: string; headers: Record<string, string> };
  assert.equal(sent.url, '/config/reload');
  assert.equal(sent.method, 'GET');
  c.ack(event.id, [{ status: 200, headers: { requestId: sent.headers['snyk-request-id'] }, body: '{"ok":true,"msg":"Synchronizing Config."}' }]);
  const got = await answer;
  assert.equal(got.status, 200);
  assert.deepEqual(JSON.parse(got.body), { ok: true, msg: 'Synchronizing Config.' });
});

test('without mandatory auth nothing changes: tunnels need no bearer, the /hidden/brokers routes are not served', async () => {
  const s = await startInProcessServer({}, undefined, captureLogger());
  servers.push(s);
  const c = new FakeTunnelClient(s.url, T, { clientId: 'classic' });
  clients.push(c);
  await c.opened;
  await waitFor('classic tunnel ready', () => s.server.pool.members(T).some((m) => m.state === 'ready'));
  assert.equal(s.server.pool.members(T)[0]!.credentials, undefined);
  assert.equal((await postHidden(s.url, 'x', GOOD, 200, 'x')).status, 404);
  assert.equal((await refresh(s.url, GOOD, 'classic')).status, 404);
});

test('no log line (trace level, every test above) carries a bearer token or the gateway header value', () => {
  assert.ok(logLines.length > 20, `only ${logLines.length} log lines captured`);
  for (const secret of [GOOD_JWT, REFRESH_JWT, OTHER_JWT, 'not-a-valid-token-value-123', 'refresh-that-the-service-refuses', 'gateway-header-secret']) {
    const leaking = logLines.filter((l) => l.includes(secret));
    assert.deepEqual(leaking, [], `a log line carries ${secret.slice(0, 12)}…`);
  }
});
