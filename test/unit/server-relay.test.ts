import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { encodeEvent, encodeResponseHead, encodeTunnelAnswer, TUNNEL_ANSWERS_CAPABILITY } from '../../src/protocol/index.js';
import { FakeTunnelClient, postResponseData } from '../support/fake-tunnel-client.js';
import { connectFakeClients, startInProcessServer, type InProcessServer } from '../support/in-process-server.js';
import { waitFor } from '../support/wait.js';
import { platform, type PlatformAnswer } from '../support/platform-request.js';
import { FAILURES } from '../../src/protocol/failures.js';

const T = 'b9460892-5397-48f1-8697-488769ae3797';

const servers: InProcessServer[] = [];
const clients: FakeTunnelClient[] = [];
after(async () => {
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.stop()));
});

async function setup(env: Record<string, string> = {}, clientCount = 1, options: ConstructorParameters<typeof FakeTunnelClient>[2] = {}) {
  const s = await startInProcessServer(env);
  servers.push(s);
  const fakes = await connectFakeClients(s, T, clientCount, options, clients);
  return { s, fakes };
}

function streamingIdOf(r: { args: unknown[] }): string {
  return (r.args[0] as { streamingID: string }).streamingID;
}

test('server identifies first with receive-post-streams; a relayed GET streams back through POST /response-data', async () => {
  const { s, fakes } = await setup();
  const [c] = fakes as [FakeTunnelClient];
  const first = c.messages[0];
  assert.deepEqual(first, { kind: 'event', name: 'identify', args: [{ capabilities: ['receive-post-streams', 'ha-broker/tunnel-answers', 'ha-broker/tunnel-streams'] }] });
  const answer = platform(`${s.url}/broker/${T}/ctx/22222222-2222-4222-8222-222222222222/echo/hi?connection_role=primary&x=1`, { headers: { 'x-request-id': '11111111-1111-4111-8111-111111111111' } });
  const r = await c.nextRequest(0);
  const event = r.args[0] as { url: string; method: string; headers: Record<string, string>; streamingID: string; requestId: string };
  assert.equal(r.id, undefined, 'no ack id: the answer comes by POST');
  assert.equal(event.url, '/echo/hi?x=1');
  assert.equal(event.method, 'GET');
  assert.equal(event.requestId, '11111111-1111-4111-8111-111111111111');
  assert.equal(event.headers['snyk-request-id'], '11111111-1111-4111-8111-111111111111');
  assert.equal(event.headers['x-snyk-broker-context-id'], '22222222-2222-4222-8222-222222222222');
  const post = await postResponseData(s.url, T, event.streamingID, [encodeResponseHead({ status: 201, headers: { 'content-type': 'text/plain', 'x-origin': 'yes' } }), Buffer.from('hello '), Buffer.from('world')]);
  assert.deepEqual(post, { status: 200, body: '{}' });
  const got = await answer;
  assert.equal(got.status, 201);
  assert.equal(got.body, 'hello world');
  assert.equal(got.headers['x-origin'], 'yes');
  assert.equal(got.headers['snyk-request-id'], '11111111-1111-4111-8111-111111111111');
  assert.equal(got.headers['x-broker-connection'], 'fake-0:primary');
  // The per-request metrics are tallied (observability/metrics.ts): a scrape shows this relay.
  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  assert.match(metrics, /^broker_server_relayed_requests_total\{connection="fake-0:primary"\} 1$/m);
  assert.match(metrics, /^broker_server_relay_latency_seconds_count\{variant="stream"\} 1$/m);
  assert.match(metrics, /^broker_server_relay_latency_seconds_bucket\{le="\+Inf",variant="stream"\} 1$/m);
  assert.match(metrics, /^broker_server_relay_outcomes_total\{outcome="answered"\} 1$/m);
  assert.match(metrics, /^broker_server_relay_bytes_total\{direction="response"\} 11$/m);
  assert.match(metrics, /^broker_server_relays_in_flight 0$/m);
});

const OURS = { capabilities: ['post-streams', 'ha-broker/1'] };

/** A whole answer (status and body) for `streamingID`, as a client uploads it by POST /response-data. */
function postAnswer(serverUrl: string, streamingID: string, status: number, body: string) {
  return postResponseData(serverUrl, T, streamingID, [encodeResponseHead({ status }), Buffer.from(body)]);
}

/** The request for `url` arrives (again) on `client`, and its answer `body` reaches the platform request waiting for it. */
async function answerOn(serverUrl: string, client: FakeTunnelClient, url: string, waiting: Promise<PlatformAnswer>, body: string) {
  const r = await client.nextRequest(0);
  assert.equal((r.args[0] as { url: string }).url, url);
  await postAnswer(serverUrl, streamingIdOf(r), 200, body);
  const got = await waiting;
  assert.equal(got.status, 200);
  assert.equal(got.body, body);
}

function answerFrame(streamingID: string, status: number, body: string, headers: Record<string, string> = {}): Buffer {
  return encodeTunnelAnswer(streamingID, Buffer.concat([encodeResponseHead({ status, headers: { 'content-length': String(Buffer.byteLength(body)), ...headers } }), Buffer.from(body)]));
}

test('tunnel answers: our client answers a small request with one binary frame on its tunnel; no POST', async () => {
  const { s, fakes } = await setup({}, 1, OURS);
  const [c] = fakes as [FakeTunnelClient];
  assert.ok((c.messages[0] as unknown as { args: [{ capabilities: string[] }] }).args[0].capabilities.includes(TUNNEL_ANSWERS_CAPABILITY));
  const answer = platform(`${s.url}/broker/${T}/echo`);
  const r = await c.nextRequest(0);
  c.ws.send(answerFrame(streamingIdOf(r), 203, 'over the tunnel', { 'x-origin': 'yes' }));
  const got = await answer;
  assert.equal(got.status, 203);
  assert.equal(got.body, 'over the tunnel');
  assert.equal(got.headers['x-origin'], 'yes');
  assert.equal(got.headers['x-broker-connection'], 'fake-0:primary');
  // The same request cannot be answered twice: a late POST finds nothing waiting.
  const post = await postAnswer(s.url, streamingIdOf(r), 200, 'x');
  assert.equal((post as { status: number }).status, 500);
});

test('tunnel answers: ignored from a client that is not ours, and from another connection of the token; the POST still works', async () => {
  const { s, fakes } = await setup({}, 2, OURS);
  const real = new FakeTunnelClient(s.url, T, { clientId: 'real' });
  clients.push(real);
  await real.opened;
  await waitFor('three connections', () => s.server.pool.members(T).filter((c) => c.state === 'ready').length === 3);
  const badFrames = async () => Number(/broker_server_bad_frames_total (\d+)/.exec(await (await fetch(`${s.url}/metrics`)).text())?.[1] ?? 0);
  for (let i = 0; i < 3; i++) {
    const answer = platform(`${s.url}/broker/${T}/echo/${i}`);
    const receiver = await waitFor('the request reached a client', () => [...fakes, real].find((f) => f.requests.length > 0));
    const r = receiver.requests[0]!;
    const id = streamingIdOf(r);
    const others = [...fakes, real].filter((f) => f !== receiver);
    const before = await badFrames();
    // Connections the request did not go to, and the client that is not ours even when it got the request.
    const senders = receiver === real ? [...others, real] : others;
    for (const [n, o] of senders.entries()) {
      o.ws.send(answerFrame(id, 200, 'forged'));
      // A pong on the same tunnel proves the server has handled the frame sent before it.
      const stamp = 1_000_000 + i * 10 + n;
      o.ping(stamp);
      await waitFor('pong after the forged frame', () => o.messages.some((m) => m.kind === 'pong' && m.timestamp === String(stamp)));
    }
    assert.equal(await badFrames(), before + 1, 'the binary message of the client that is not ours counts as a bad frame');
    const post = await postAnswer(s.url, id, 200, `posted ${i}`);
    assert.deepEqual(post, { status: 200, body: '{}' });
    const got = await answer;
    assert.equal(got.body, `posted ${i}`, 'a frame from another connection or a client that is not ours must not answer');
    for (const f of [...fakes, real]) f.requests.length = 0;
  }
});

test('tunnel answers: a frame whose head does not decode fails its request at once with 502 bad-response', async () => {
  const { s, fakes } = await setup({}, 1, OURS);
  const [c] = fakes as [FakeTunnelClient];
  const answer = platform(`${s.url}/broker/${T}/x`);
  const r = await c.nextRequest(0);
  const junk = Buffer.from('{not json');
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(junk.length);
  c.ws.send(encodeTunnelAnswer(streamingIdOf(r), Buffer.concat([prefix, junk])));
  const got = await answer;
  assert.equal(got.status, 502);
  assert.equal(got.headers['x-broker-failure'], FAILURES.BAD_RESPONSE.reason);
  assert.match(got.body, /invalid answer/);
});

test('unknown streamingID → 500 with the contract message', async () => {
  const { s } = await setup();
  const post = await postAnswer(s.url, 'no-such-id', 200, 'x');
  assert.deepEqual(post, { status: 500, body: JSON.stringify({ message: 'Unable to find request matching streaming id.' }) });
});

test('truncated length prefix: the upload gets 400, the platform 502 bad-response; nothing hangs', async () => {
  const { s, fakes } = await setup();
  const answer = platform(`${s.url}/broker/${T}/x`, { method: 'POST', body: 'data' });
  const r = await fakes[0]!.nextRequest(0);
  const post = await postResponseData(s.url, T, streamingIdOf(r), [Buffer.from([5, 0])]);
  assert.ok('status' in post && post.status === 400, JSON.stringify(post));
  assert.match((post as { body: string }).body, /ended inside its (head|length prefix)/i);
  const got = await answer;
  assert.equal(got.status, 502);
  assert.equal(got.headers['x-broker-failure'], FAILURES.BAD_RESPONSE.reason);
});

test('bad JSON head: the upload gets 400 naming it, the platform 502 bad-response', async () => {
  const { s, fakes } = await setup();
  const answer = platform(`${s.url}/broker/${T}/x`);
  const r = await fakes[0]!.nextRequest(0);
  const junk = Buffer.from('{not json');
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(junk.length);
  const post = await postResponseData(s.url, T, streamingIdOf(r), [prefix, junk, Buffer.from('body')]);
  assert.ok('status' in post && post.status === 400, JSON.stringify(post));
  assert.match((post as { body: string }).body, /not valid JSON/);
  const got = await answer;
  assert.equal(got.status, 502);
  assert.equal(got.headers['x-broker-failure'], FAILURES.BAD_RESPONSE.reason);
  assert.match(got.body, /invalid answer/);
});

test('a head that stalls half-way ends in 504 after the request timeout, and the stalled upload is cut', async () => {
  const { s, fakes } = await setup({ BROKER_SERVER_REQUEST_TIMEOUT_MS: '800' });
  const answer = platform(`${s.url}/broker/${T}/x`);
  const r = await fakes[0]!.nextRequest(0);
  const upload = httpRequest(new URL(`/response-data/${T}/${streamingIdOf(r)}`, s.url), { method: 'POST', headers: { 'transfer-encoding': 'chunked' } });
  const uploadEnded = new Promise<string>((resolve) => {
    upload.on('error', (err) => resolve(`error: ${err.message}`));
    upload.on('response', (res) => resolve(`status ${res.statusCode}`));
  });
  upload.write(Buffer.from([50, 0, 0, 0, 0x7b])); // promises 50 bytes of head, sends 1, never ends
  const got = await answer;
  assert.equal(got.status, 504);
  assert.equal(got.headers['x-broker-failure'], FAILURES.RESPONSE_TIMEOUT.reason);
  assert.match(await uploadEnded, /error/, 'the stalled upload was cut by the server');
});

test('no answer at all → 504 response-timeout', async () => {
  const { s, fakes } = await setup({ BROKER_SERVER_REQUEST_TIMEOUT_MS: '500' });
  const answer = platform(`${s.url}/broker/${T}/never`);
  await fakes[0]!.nextRequest(0);
  const got = await answer;
  assert.equal(got.status, 504);
  assert.equal(got.headers['x-broker-failure'], FAILURES.RESPONSE_TIMEOUT.reason);
});

test('x-broker-ws-response: the request carries an ack id and the ack is the answer', async () => {
  const { s, fakes } = await setup();
  const answer = platform(`${s.url}/broker/${T}/ws`, { headers: { 'x-broker-ws-response': 'true' } });
  const r = await fakes[0]!.nextRequest(0);
  assert.equal(typeof r.id, 'number');
  assert.equal(streamingIdOf(r), '');
  fakes[0]!.ack(r.id!, [{ status: 202, headers: { 'content-type': 'application/json', 'x-broker-ws-response': 'true', 'content-length': '999' }, body: '{"ok":1}' }]);
  const got = await answer;
  assert.equal(got.status, 202);
  assert.equal(got.body, '{"ok":1}');
  assert.equal(got.headers['content-length'], '8');
  assert.equal(got.headers['x-broker-ws-response'], 'true');
});

test('no connection → 404 no-connection; after the last disconnect → 503 with Retry-After', async () => {
  const { s, fakes } = await setup();
  const none = await platform(`${s.url}/broker/00000000-0000-4000-8000-000000000000/x`);
  assert.equal(none.status, 404);
  assert.equal(none.headers['x-broker-failure'], FAILURES.NO_CONNECTION.reason);
  fakes[0]!.close();
  await waitFor('pool empty', () => s.server.pool.members(T).length === 0);
  const recent = await platform(`${s.url}/broker/${T}/x`);
  assert.equal(recent.status, 503);
  assert.equal(recent.headers['x-broker-failure'], FAILURES.CONNECTION_NOT_READY.reason);
  assert.equal(recent.headers['retry-after'], '1');
});

test('GET whose tunnel drops after sending is retried once on another connection; POST is not', async () => {
  const { s, fakes } = await setup({ BROKER_SERVER_ANSWER_GRACE_MS: '300' }, 2);
  const [a, b] = fakes as [FakeTunnelClient, FakeTunnelClient];
  const get = platform(`${s.url}/broker/${T}/idempotent`);
  await waitFor('request delivered', () => a.requests.length + b.requests.length === 1);
  const [dying, other] = a.requests.length === 1 ? [a, b] : [b, a];
  dying.close();
  await answerOn(s.url, other, '/idempotent', get, 'second try');

  const post = platform(`${s.url}/broker/${T}/not-idempotent`, { method: 'POST', body: 'x' });
  await other.nextRequest(1);
  other.close();
  const failed = await post;
  assert.equal(failed.status, 502);
  assert.equal(failed.headers['x-broker-failure'], FAILURES.TUNNEL_CLOSED.reason);
  // The client may have relayed it before the tunnel dropped: the platform is told so.
  assert.match(failed.body, /may have reached the origin/);
});

test('a GET whose every tunnel dropped waits for the client to reconnect and is answered; with BROKER_SERVER_RECONNECT_WAIT_MS=0 it fails at once', async () => {
  const { s, fakes } = await setup({ BROKER_SERVER_RECONNECT_WAIT_MS: '10000' }, 1);
  const get = platform(`${s.url}/broker/${T}/after-blip`);
  await fakes[0]!.nextRequest(0);
  fakes[0]!.close();
  await waitFor('tunnel gone', () => s.server.pool.members(T).length === 0);
  // The client comes back (a network blip, not a dead client): the request is sent again.
  const back = new FakeTunnelClient(s.url, T, { clientId: 'fake-0' });
  clients.push(back);
  await answerOn(s.url, back, '/after-blip', get, 'after the reconnect');
  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  assert.match(metrics, /broker_server_relay_retries_total\{reason="reconnected"\} 1/);

  // With the wait off, a GET whose every tunnel dropped fails at once.
  const off = await setup({ BROKER_SERVER_RECONNECT_WAIT_MS: '0' }, 1);
  const started = Date.now();
  const failing = platform(`${off.s.url}/broker/${T}/no-wait`);
  await off.fakes[0]!.nextRequest(0);
  off.fakes[0]!.close();
  const failed = await failing;
  assert.equal(failed.status, 502);
  assert.equal(failed.headers['x-broker-failure'], FAILURES.TUNNEL_CLOSED.reason);
  assert.ok(Date.now() - started < 5000, 'failed without waiting for a reconnect');
});

test('every connection of the token here draining (its client is moving): a request waits for the new tunnel, even a POST; without the wait, 503 connection-not-ready at once', async () => {
  const shutdown = encodeEvent('client-event', [{ ts: Date.now(), event: { type: 'client-shutdown' } }]);
  const { s, fakes } = await setup({ BROKER_SERVER_RECONNECT_WAIT_MS: '10000' }, 1);
  fakes[0]!.sendRaw(shutdown);
  await waitFor('the only connection draining', () => s.server.pool.members(T)[0]?.state === 'draining');
  const post = platform(`${s.url}/broker/${T}/while-moving`, { method: 'POST', body: 'payload' });
  // Nothing is sent to the draining tunnel; the client's replacement takes the request.
  const back = new FakeTunnelClient(s.url, T, { clientId: 'fake-0', instanceId: 'new-pod' });
  clients.push(back);
  await answerOn(s.url, back, '/while-moving', post, 'on the new tunnel');
  assert.equal(fakes[0]!.requests.length, 0);

  const off = await setup({ BROKER_SERVER_RECONNECT_WAIT_MS: '0' }, 1);
  off.fakes[0]!.sendRaw(shutdown);
  await waitFor('the only connection draining', () => off.s.server.pool.members(T)[0]?.state === 'draining');
  const refused = await platform(`${off.s.url}/broker/${T}/x`);
  assert.equal(refused.status, 503);
  assert.equal(refused.headers['x-broker-failure'], FAILURES.CONNECTION_NOT_READY.reason);
  assert.equal(refused.headers['retry-after'], '1');
});

test('a POST whose tunnel dropped still takes an answer uploaded within the grace period', async () => {
  const { s, fakes } = await setup({ BROKER_SERVER_ANSWER_GRACE_MS: '5000' }, 2);
  const post = platform(`${s.url}/broker/${T}/create`, { method: 'POST', body: 'payload' });
  await waitFor('request delivered', () => fakes[0]!.requests.length + fakes[1]!.requests.length === 1);
  const holder = fakes[0]!.requests.length === 1 ? fakes[0]! : fakes[1]!;
  const other = holder === fakes[0] ? fakes[1]! : fakes[0]!;
  holder.close();
  await waitFor('tunnel gone', () => s.server.pool.members(T).length === 1);
  await postAnswer(s.url, streamingIdOf(holder.requests[0]!), 201, 'created once');
  const got = await post;
  assert.equal(got.status, 201);
  assert.equal(got.body, 'created once');
  assert.equal(other.requests.length, 0, 'a POST is never sent twice');
});

test('a retry after a dropped tunnel prefers another client over the dead client\'s other tunnel', async () => {
  const s = await startInProcessServer();
  servers.push(s);
  const aPrimary = new FakeTunnelClient(s.url, T, { clientId: 'A', role: 'primary' });
  clients.push(aPrimary);
  await aPrimary.opened;
  await waitFor('A primary', () => s.server.pool.members(T).length === 1);
  const aSecondary = new FakeTunnelClient(s.url, T, { clientId: 'A', role: 'secondary' });
  clients.push(aSecondary);
  await aSecondary.opened;
  await waitFor('A secondary', () => s.server.pool.members(T).length === 2);
  const b = new FakeTunnelClient(s.url, T, { clientId: 'B' });
  clients.push(b);
  await b.opened;
  await waitFor('B', () => s.server.pool.members(T).length === 3);
  const get = platform(`${s.url}/broker/${T}/x`);
  await aPrimary.nextRequest(0);
  aPrimary.close();
  const retried = await b.nextRequest(0);
  assert.equal(aSecondary.requests.length, 0, 'the dead client\'s other tunnel was passed over');
  await postAnswer(s.url, streamingIdOf(retried), 200, 'from B');
  assert.equal((await get).body, 'from B');
});

test('an idempotent answer cut off mid-body (client died) is retried on another connection', async () => {
  const { s, fakes } = await setup({}, 2);
  const [a, b] = fakes as [FakeTunnelClient, FakeTunnelClient];
  const get = platform(`${s.url}/broker/${T}/cut`);
  await waitFor('request delivered', () => a.requests.length + b.requests.length === 1);
  const [first, second] = a.requests.length === 1 ? [a, b] : [b, a];
  const cut = await postResponseData(s.url, T, streamingIdOf(first.requests[0]!), [encodeResponseHead({ status: 200, headers: { 'content-length': '100' } }), Buffer.from('partial')], { abortAfterParts: true });
  assert.ok('error' in cut, 'the aborted upload errors on the client side');
  const retried = await second.nextRequest(0);
  await postAnswer(s.url, streamingIdOf(retried), 200, 'complete');
  const got = await get;
  assert.equal(got.status, 200);
  assert.equal(got.body, 'complete');
});

test('webhooks without ACCEPT are refused with a clear reason', async () => {
  const { fakes } = await setup();
  const [answer] = (await fakes[0]!.call('request', [{ url: '/webhook/github/x', method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.from('{}'), streamingID: '' }])) as [
    { status: number; body: string },
  ];
  assert.equal(answer.status, 401);
  assert.match(answer.body, /no ACCEPT rules/);
});

test('primus::ping is answered with the same number; a client that stops answering pings is dropped', async () => {
  const { s, fakes } = await setup({ SOCKET_PING_INTERVAL: '200', SOCKET_PING_TIMEOUT: '300' });
  const c = fakes[0]!;
  c.ping(1234);
  await c.waitFor('pong', () => c.messages.find((m) => m.kind === 'pong' && m.timestamp === '1234'));
  c.answerPings = false;
  await c.closed;
  await waitFor('pool empty', () => s.server.pool.members(T).length === 0);
});

test('a tunnel silent for ping interval + 10 s is dropped even when engine.io would wait longer', async () => {
  // engine.io alone would wait 1 s + 60 s for the missing pong; the silence sweep (like Primus' 35 s) acts at 11 s.
  const { s, fakes } = await setup({ SOCKET_PING_INTERVAL: '1000', SOCKET_PING_TIMEOUT: '60000' });
  const c = fakes[0]!;
  c.answerPings = false;
  const started = Date.now();
  await c.closed;
  const silentFor = Date.now() - started;
  assert.ok(silentFor < 30_000, `closed after ${silentFor} ms`);
  await waitFor('pool empty', () => s.server.pool.members(T).length === 0);
});

test('a tunnel whose identify token differs from its path is closed; an outdated client is refused with a notification', async () => {
  const s = await startInProcessServer();
  servers.push(s);
  const wrong = new FakeTunnelClient(s.url, T, { identify: false });
  clients.push(wrong);
  await wrong.opened;
  await wrong.waitFor('server identify', () => wrong.messages[0]);
  wrong.identify('aaaaaaaa-5397-48f1-8697-488769ae3797');
  await wrong.closed;
  const old = new FakeTunnelClient(s.url, T, { version: '4.99.0', clientId: 'old' });
  clients.push(old);
  await old.opened;
  await old.closed;
  assert.ok(old.messages.some((m) => m.kind === 'event' && m.name === 'notification' && /outdated/.test(JSON.stringify(m.args))));
  assert.ok(old.messages.some((m) => m.kind === 'server-close'), 'told not to reconnect');
  assert.equal(s.server.pool.members(T).length, 0);
});

test('drain: readyz goes 503, new requests get 503 server-draining, our client is told to go elsewhere (4001), an in-flight request finishes', async () => {
  const s = await startInProcessServer({ BROKER_SERVER_DRAIN_GRACE_MS: '10000' });
  const ours = new FakeTunnelClient(s.url, T, { clientId: 'ours', capabilities: ['post-streams', 'ha-broker/1'] });
  const real = new FakeTunnelClient(s.url, T, { clientId: 'real', role: 'secondary' });
  clients.push(ours, real);
  await Promise.all([ours.opened, real.opened]);
  await waitFor('both ready', () => s.server.pool.members(T).length === 2);
  const inflight = platform(`${s.url}/broker/${T}/slow`);
  await waitFor('delivered', () => ours.requests.length + real.requests.length === 1);
  const holder = ours.requests.length === 1 ? ours : real;
  const other = holder === ours ? real : ours;
  const stopped = s.server.stop('SIGTERM');
  await waitFor('draining', () => s.server.draining);
  assert.equal((await platform(`${s.url}/readyz`)).status, 503);
  const refused = await platform(`${s.url}/broker/${T}/new`);
  assert.equal(refused.status, 503);
  assert.equal(refused.headers['x-broker-failure'], FAILURES.SERVER_DRAINING.reason);
  const otherClosed = await other.closed;
  assert.equal(otherClosed.code, 4001);
  if (other === ours) assert.ok(ours.messages.some((m) => m.kind === 'server-close'), 'our client hears primus::server::close');
  else assert.ok(!real.messages.some((m) => m.kind === 'server-close'), 'a real client is not told to stop reconnecting');
  await postAnswer(s.url, streamingIdOf(holder.requests[0]!), 200, 'finished');
  const got = await inflight;
  assert.equal(got.body, 'finished');
  await stopped;
  const holderClosed = await holder.closed;
  assert.equal(holderClosed.code, 4001);
});
