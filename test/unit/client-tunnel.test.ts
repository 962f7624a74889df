// The client's tunnels against a scripted broker server: handshake, heartbeats, bad frames,
// unsafe paths, the three answer paths, reconnects.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { FakeBrokerServer, type FakeConnection } from '../support/fake-broker-server.js';
import { startTestClient, type TestClient } from '../support/client-harness.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { waitFor } from '../support/wait.js';
import { hashToken } from '../../src/protocol/index.js';
import { writeFile } from 'node:fs/promises';
import { FAILURES } from '../../src/protocol/failures.js';

const token = randomUUID();
let fake: FakeBrokerServer;
let origin: Origin;
let tc: TestClient;

function primary(): FakeConnection {
  const c = fake.open().find((x) => x.role === 'primary');
  assert.ok(c, 'primary tunnel open');
  return c;
}

async function relayGet(conn: FakeConnection, url: string) {
  const streamingID = randomUUID();
  fake.emit(conn, 'request', { url, method: 'GET', headers: { 'snyk-request-id': randomUUID() }, streamingID, requestId: randomUUID() });
  return waitFor(`response-data for ${url}`, () => fake.responses.get(streamingID));
}

before(async () => {
  fake = await new FakeBrokerServer().start();
  origin = await startOrigin();
  tc = await startTestClient(
    { BROKER_TOKEN: token, BROKER_SERVER_URL: fake.url, ORIGIN_URL: origin.url, BROKER_CLIENT_MAX_FRAME_BYTES: '65536', SOCKET_PING_INTERVAL: '1000', SOCKET_PONG_TIMEOUT: '3000' },
    { private: [{ method: 'any', path: '/echo/*', origin: '${ORIGIN_URL}' }, { method: 'GET', path: '/bytes/*', origin: '${ORIGIN_URL}' }], public: [{ method: 'POST', path: '/webhook/*' }] },
  );
  await waitFor('two identified tunnels', () => fake.open().length === 2);
});

after(async () => {
  await tc?.stop();
  await fake?.stop();
  await origin?.close();
  assert.ok(!tc.lines.join('\n').includes(token), 'token in client logs');
});

test('handshake: url, headers and identify of the contract', () => {
  const c = primary();
  assert.equal(c.url.pathname, `/primus/${token}/`);
  assert.equal(c.url.searchParams.get('connection_role'), 'primary');
  assert.equal(c.url.searchParams.get('EIO'), '4');
  assert.equal(c.url.searchParams.get('transport'), 'websocket');
  assert.equal(c.url.searchParams.get('server_id'), null);
  assert.equal(c.headers['x-snyk-broker-client-role'], 'primary');
  assert.equal(c.headers['x-snyk-broker-client-id'], tc.config.clientId);
  assert.ok(c.headers['x-broker-client-version']);
  assert.ok(c.headers['snyk-request-id']);
  const id = c.identify!;
  assert.equal(id.token, token);
  assert.deepEqual(id.metadata.capabilities, ['post-streams', 'ha-broker/1']);
  assert.equal(id.metadata.identifier, hashToken(token));
  assert.equal(id.metadata.clientId, tc.config.clientId);
  assert.equal(id.metadata.role, 'primary');
  assert.ok((id.metadata.filters as { private: unknown[] }).private.length > 0);
  assert.ok(fake.open().some((x) => x.role === 'secondary'));
});

test('answers engine.io pings and sends Primus pings', async () => {
  const c = primary();
  fake.sendRaw(c, '2');
  await waitFor('engine.io pong', () => c.enginePongs > 0);
  await waitFor('a primus ping', () => c.messages.some((m) => m.kind === 'ping'));
});

test('relays a GET by response-data', async () => {
  const r = await relayGet(primary(), '/echo/a?b=1');
  assert.equal(r.head.status, 200);
  assert.equal(JSON.parse(r.body.toString()).url, '/echo/a?b=1');
  assert.match(r.url, /connection_role=primary/);
  assert.equal(r.headers['content-type'], 'application/vnd.broker.stream+octet-stream');
});

test('strips a leading /ctx/<uuid>', async () => {
  const r = await relayGet(primary(), `/ctx/${randomUUID()}/echo/ctx`);
  assert.equal(JSON.parse(r.body.toString()).url, '/echo/ctx');
});

test('a frame that is not JSON is logged and the tunnel stays up', async () => {
  const c = primary();
  fake.sendRaw(c, '4{not json');
  fake.sendRaw(c, '9garbage');
  await tc.waitForLog('dropped a bad tunnel frame');
  await tc.waitForLog('dropped a bad engine.io packet');
  const r = await relayGet(c, '/echo/after-garbage');
  assert.equal(r.head.status, 200);
  assert.equal(c.closed, false);
});

test('an unknown event is logged; with an ack id it is answered', async () => {
  const c = primary();
  fake.emit(c, 'bogus-event', { x: 1 });
  await tc.waitForLog('unknown event from the broker server; ignored', (e) => e.event === 'bogus-event');
  const [ack] = (await fake.call(c, 'another-bogus', [{}])) as [{ status: number }];
  assert.equal(ack.status, 400);
  assert.equal(c.closed, false);
});

test('an oversized frame is logged and dropped; the tunnel stays up', async () => {
  const c = primary();
  fake.emit(c, 'request', { url: '/echo/big', method: 'POST', headers: {}, body: 'x'.repeat(200_000), streamingID: randomUUID() });
  await tc.waitForLog('dropped a bad tunnel frame', (e) => e.code === 'FRAME_TOO_LARGE');
  const r = await relayGet(c, '/echo/after-big');
  assert.equal(r.head.status, 200);
  assert.equal(c.closed, false);
});

test('a bad request payload with an ack id is answered with an error', async () => {
  const c = primary();
  const [ack] = (await fake.call(c, 'request', [{ url: 5, method: [] }])) as [{ status: number; errorType: string }];
  assert.equal(ack.status, 400);
  assert.equal(ack.errorType, 'BAD_REQUEST');
});

for (const path of ['/echo/../etc/passwd', '/echo/%2e%2e/secret', '/echo/%2E%2E%2Fsecret', '/echo/..%2fsecret', '/echo/%252e%252e/x']) {
  test(`a path escaping the rules is blocked: ${path}`, async () => {
    const c = primary();
    const before = origin.seen.length;
    const r = await relayGet(c, path);
    assert.equal(r.head.status, 401);
    assert.equal(r.head.errorType, 'FILTER_BLOCKED');
    const [ack] = (await fake.call(c, 'request', [{ url: path, method: 'GET', headers: {}, streamingID: '' }])) as [{ status: number; body: string }];
    assert.equal(ack.status, 401);
    assert.equal(JSON.parse(ack.body).code, 'FILTER_BLOCKED');
    assert.equal(origin.seen.length, before, 'the origin was called');
    assert.equal(c.closed, false);
  });
}

test('answers by ack when the event has an id', async () => {
  const c = primary();
  const [ack] = (await fake.call(c, 'request', [{ url: '/echo/ack', method: 'GET', headers: {}, streamingID: '' }])) as [{ status: number; body: string; headers: Record<string, string> }];
  assert.equal(ack.status, 200);
  assert.equal(JSON.parse(ack.body).url, '/echo/ack');
  assert.equal(ack.headers['x-broker-ws-response'], 'true');
});

test('an ack answer above SOCKET_MAX_RESPONSE_LENGTH is refused with BODY_TOO_LARGE', async () => {
  const c = primary();
  const [ack] = (await fake.call(c, 'request', [{ url: '/bytes/30000000', method: 'GET', headers: {}, streamingID: '' }])) as [{ status: number; errorType: string }];
  assert.equal(ack.status, 502);
  assert.equal(ack.errorType, 'BODY_TOO_LARGE');
});

test('a webhook goes out as a request event with an ack, and the ack comes back', async () => {
  const c = primary();
  const pending = request(`${tc.url}/webhook/github/x`, { method: 'POST', body: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  const msg = await waitFor('webhook event', () => c.messages.find((m) => m.kind === 'event' && m.name === 'request' && (m.args[0] as { url: string }).url === '/webhook/github/x'));
  assert.ok(msg.kind === 'event' && msg.id !== undefined);
  const payload = msg.args[0] as { body: string; streamingID: string; headers: Record<string, string> };
  assert.equal(payload.body, 'a=1');
  assert.equal(payload.streamingID, '');
  c.ws.send(`4${JSON.stringify({ id: msg.id, type: 1, data: [{ status: 202, headers: { 'x-from': 'server' }, body: 'accepted' }] })}`);
  const res = await pending;
  assert.equal(res.statusCode, 202);
  assert.equal(res.headers['x-from'], 'server');
  assert.equal(await res.body.text(), 'accepted');
});

test('a webhook body above the cap is refused 413', async () => {
  const res = await request(`${tc.url}/webhook/big`, { method: 'POST', body: Buffer.alloc(11 * 1024 * 1024) });
  assert.equal(res.statusCode, 413);
  assert.equal(res.headers['x-broker-failure'], FAILURES.BODY_TOO_LARGE.reason);
  await res.body.dump();
});

test('a missing heartbeat answer makes the client reconnect', async () => {
  const before = fake.connections.length;
  fake.answerPrimusPings = false;
  await waitFor('a reconnect', () => fake.connections.length > before);
  fake.answerPrimusPings = true;
  await waitFor('two identified tunnels again', () => fake.open().length === 2, { timeoutMs: 30_000 });
});

test('a deliberate server close (primus::server::close, 4001) is followed by a reconnect', async () => {
  const c = primary();
  const before = fake.connections.length;
  fake.sendRaw(c, `4${JSON.stringify('primus::server::close')}`);
  c.ws.close(4001, 'server-draining');
  await waitFor('reconnect after a drain close', () => fake.connections.length > before && fake.open().some((x) => x.role === 'primary'), { timeoutMs: 30_000 });
});

test('legacy chunk events when the server lacks receive-post-streams', async () => {
  fake.capabilities = [];
  const c = primary();
  c.ws.close(1001, 'going away');
  await waitFor('reconnected primary', () => fake.open().some((x) => x.role === 'primary' && x !== c), { timeoutMs: 30_000 });
  const fresh = fake.open().find((x) => x.role === 'primary' && x !== c)!;
  const streamingID = randomUUID();
  fake.emit(fresh, 'request', { url: '/echo/chunky', method: 'GET', headers: {}, streamingID });
  const chunks = await waitFor('final chunk', () => {
    const list = fresh.messages.filter((m) => m.kind === 'event' && m.name === 'chunk' && m.args[0] === streamingID);
    return list.some((m) => m.kind === 'event' && m.args[2] === true) ? list : undefined;
  });
  const first = chunks[0]!;
  assert.ok(first.kind === 'event');
  assert.equal((first.args[3] as { status: number }).status, 200);
  const body = Buffer.concat(chunks.slice(1).map((m) => (m.kind === 'event' && Buffer.isBuffer(m.args[1]) ? m.args[1] : Buffer.alloc(0))));
  assert.equal(JSON.parse(body.toString()).url, '/echo/chunky');
  fake.capabilities = ['receive-post-streams'];
});

test('POST /filters reloads the accept rules from the file', async () => {
  // The primary of the previous test speaks legacy chunks; the secondary uses response-data.
  const c = fake.open().find((x) => x.role === 'secondary')!;
  const blocked = await relayGet(c, '/status/201');
  assert.equal(blocked.head.status, 401);
  await writeFile(tc.config.acceptPath, JSON.stringify({ private: [{ method: 'GET', path: '/status/*', origin: '${ORIGIN_URL}' }], public: [] }));
  const res = await request(`${tc.url}/filters`, { method: 'POST' });
  assert.equal(res.statusCode, 200);
  await res.body.dump();
  const allowed = await relayGet(c, '/status/201');
  assert.equal(allowed.head.status, 201);
  const rules = (await (await request(`${tc.url}/filters`)).body.json()) as { private: Array<{ path: string }> };
  assert.deepEqual(rules.private.map((r) => r.path), ['/status/*']);
});
