import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { encodeEvent, encodeResponseHead } from '../../src/protocol/index.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';
import { answerOwner, createSessionId, createStreamingId, ownerOf, routeTunnelRequest } from '../../src/server/tunnel-routing.js';
import { FakeTunnelClient, postResponseData } from '../support/fake-tunnel-client.js';
import { startInProcessServer, type InProcessServer } from '../support/in-process-server.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

const T = 'b9460892-5397-48f1-8697-488769ae3797';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Call {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A dispatcher stand-in: lists `servers`, an empty routing lookup, records reports (optionally asking to register again). */
async function fakeDispatcher(servers: Array<{ id: string; peer_url: string; status: string }>, options: { registerHint?: () => boolean } = {}) {
  const calls: Call[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      calls.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      const path = req.url!.split('?')[0]!;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (path === '/internal/brokerservers' && req.method === 'GET') {
        res.writeHead(200, headers);
        res.end(JSON.stringify({ data: servers.map((s) => ({ id: s.id, type: 'broker_server', attributes: { status: s.status, peer_url: s.peer_url } })) }));
        return;
      }
      if (path === '/internal/connections') {
        res.writeHead(200, headers);
        res.end('{"data":[]}');
        return;
      }
      if (path.includes('/connections/') && options.registerHint?.()) headers['x-broker-dispatcher-register'] = 'true';
      res.writeHead(200, headers);
      res.end('{}');
    });
  });
  const port = await listen(server, 0, '127.0.0.1');
  cleanups.push(() => closeServer(server));
  return { url: `http://127.0.0.1:${port}`, calls };
}

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function platform(url: string, method = 'GET'): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers: method === 'POST' ? { 'content-type': 'application/json' } : {} }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(method === 'POST' ? '{"x":1}' : undefined);
  });
}

function client(serverUrl: string, options: ConstructorParameters<typeof FakeTunnelClient>[2]): FakeTunnelClient {
  const c = new FakeTunnelClient(serverUrl, T, options);
  cleanups.push(() => c.close());
  return c;
}

function streamingIdOf(r: { args: unknown[] }): string {
  return (r.args[0] as { streamingID: string }).streamingID;
}

test('routing decisions: sid owner first, then server_id; a forwarded request is never forwarded again', () => {
  const sid = createSessionId('b');
  assert.match(sid, /^[A-Za-z0-9_-]{20}\.b$/);
  assert.equal(ownerOf(sid), 'b');
  assert.equal(ownerOf(createStreamingId('broker.server-2')), 'broker.server-2');
  assert.equal(ownerOf('NSIWK6Js707m1N9zAAAA'), undefined, 'an engine.io sid of another origin names nobody');
  assert.equal(ownerOf('7a990988-0a0e-4a79-8ac6-4f4582e7615e'), undefined, 'a plain UUID names nobody');

  const url = (q: string) => `/primus/${T}/?${q}&EIO=4&transport=polling`;
  assert.deepEqual(routeTunnelRequest(url('server_id=b&connection_role=primary'), undefined, 'a'), { kind: 'allocated', serverId: 'b' });
  assert.deepEqual(routeTunnelRequest(url('server_id=a'), undefined, 'a'), { kind: 'local' });
  assert.deepEqual(routeTunnelRequest(url('connection_role=primary'), undefined, 'a'), { kind: 'local' });
  // The session decides over server_id: it exists only where it was made.
  assert.deepEqual(routeTunnelRequest(url(`server_id=b&sid=${createSessionId('c')}`), undefined, 'a'), { kind: 'session', serverId: 'c' });
  assert.deepEqual(routeTunnelRequest(url(`server_id=b&sid=${createSessionId('a')}`), undefined, 'a'), { kind: 'local' });
  // Forwarded once: served where it arrives, whatever it names.
  assert.deepEqual(routeTunnelRequest(url(`server_id=b&sid=${createSessionId('c')}`), 'x', 'a'), { kind: 'local' });
  assert.deepEqual(routeTunnelRequest(url('server_id=b'), 'x', 'a'), { kind: 'local' });

  assert.equal(answerOwner(createStreamingId('c'), '/response-data/t/s?server_id=b', 'a'), 'c');
  assert.equal(answerOwner('7a990988-0a0e-4a79-8ac6-4f4582e7615e', '/response-data/t/s?server_id=b&connection_role=primary', 'a'), 'b');
  assert.equal(answerOwner('7a990988-0a0e-4a79-8ac6-4f4582e7615e', '/response-data/t/s?server_id=a', 'a'), undefined);
  assert.equal(answerOwner('7a990988-0a0e-4a79-8ac6-4f4582e7615e', '/response-data/t/s', 'a'), undefined);
});

test('tunnels and answer uploads reach the server they belong to; unknown or dead servers are served locally', async () => {
  const [portA, portB, deadPort] = [await freePort(), await freePort(), await freePort()];
  const dispatcher = await fakeDispatcher([
    { id: 'a', peer_url: `http://127.0.0.1:${portA}`, status: 'live' },
    { id: 'b', peer_url: `http://127.0.0.1:${portB}`, status: 'live' },
    { id: 'dead', peer_url: `http://127.0.0.1:${deadPort}`, status: 'live' },
  ]);
  const start = async (id: string, port: number): Promise<InProcessServer> => {
    const s = await startInProcessServer({
      PORT: String(port),
      BROKER_SERVER_ID: id,
      BROKER_SERVER_PEER_URL: `http://127.0.0.1:${port}`,
      DISPATCHER_URL: dispatcher.url,
      BROKER_SERVER_ROUTING_REFRESH_MS: '200',
    });
    cleanups.push(() => s.stop());
    return s;
  };
  const a = await start('a', portA);
  const b = await start('b', portB);
  const readyOn = (s: InProcessServer, clientId: string) => s.server.pool.members(T).some((c) => c.state === 'ready' && c.identity?.clientId === clientId);

  // A websocket tunnel for b that lands on a is carried to b.
  const viaA = client(a.url, { clientId: 'for-b', query: 'server_id=b' });
  await viaA.opened;
  await waitFor('the tunnel for b to be identified on b', () => readyOn(b, 'for-b'));
  assert.ok(!readyOn(a, 'for-b'));

  // Already forwarded once: served where it lands, even though it names b.
  const forwarded = client(a.url, { clientId: 'forwarded', query: 'server_id=b', headers: { 'x-broker-forwarded-by': 'z' } });
  await forwarded.opened;
  await waitFor('the forwarded tunnel to be identified on a', () => readyOn(a, 'forwarded'));
  assert.ok(!readyOn(b, 'forwarded'));
  forwarded.close();
  await waitFor('the forwarded tunnel gone from a', () => !readyOn(a, 'forwarded'));

  // Unknown and unreachable servers: the tunnel is served here.
  for (const target of ['nobody', 'dead']) {
    const c = client(a.url, { clientId: `for-${target}`, query: `server_id=${target}` });
    await c.opened;
    await waitFor(`the tunnel for ${target} to be identified on a`, () => readyOn(a, `for-${target}`));
    c.close();
    await waitFor(`the tunnel for ${target} gone`, () => !readyOn(a, `for-${target}`));
  }

  // A platform request to b goes over the tunnel passing through a; the answer uploaded to a
  // (no server_id) reaches b because the streamingID names it.
  const answer = platform(`${b.url}/broker/${T}/echo/through-a`);
  const relayed = await viaA.nextRequest(0);
  const streamingID = streamingIdOf(relayed);
  assert.equal(ownerOf(streamingID), 'b');
  const upload = await postResponseData(a.url, T, streamingID, [encodeResponseHead({ status: 200, headers: { 'content-type': 'text/plain' } }), Buffer.from('answered via a')]);
  assert.deepEqual(upload, { status: 200, body: '{}' });
  const got = await answer;
  assert.equal(got.status, 200);
  assert.equal(got.body, 'answered via a');

  // Long polling: the handshake for b made through a creates the session on b; the next poll,
  // again through a, reaches that session (a alone would not know it).
  const hs = await get(`${a.url}/primus/${T}/?server_id=b&connection_role=primary&EIO=4&transport=polling`, { 'x-snyk-broker-client-id': 'poller' });
  assert.equal(hs.status, 200, hs.body);
  const sid = (JSON.parse(hs.body.slice(hs.body.indexOf('{'))) as { sid: string }).sid;
  assert.equal(ownerOf(sid), 'b');
  const poll = await get(`${a.url}/primus/${T}/?server_id=b&connection_role=primary&EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`);
  assert.equal(poll.status, 200, poll.body);
  assert.ok(poll.body.includes('identify'), poll.body);
  // The same poll sent straight to a, marked as already forwarded, is not a's session.
  const direct = await get(`${a.url}/primus/${T}/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`, { 'x-broker-forwarded-by': 'z' });
  assert.equal(direct.status, 400);

  // An upload already forwarded once is handled where it lands (here: unknown → the contract's 500), never sent on.
  const again = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest(`${a.url}/response-data/${T}/${createStreamingId('b')}`, { method: 'POST', headers: { 'x-broker-forwarded-by': 'z' } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end(encodeResponseHead({ status: 200, headers: {} }));
  });
  assert.equal(again.status, 500);
  assert.match(again.body, /Unable to find request matching streaming id/);

  // An answer upload for a server that cannot be reached: a clear failure, not a hang.
  const lost = await postResponseData(a.url, T, createStreamingId('dead'), [encodeResponseHead({ status: 200, headers: {} })]);
  assert.ok('status' in lost && lost.status >= 500, JSON.stringify(lost));
  const metrics = await get(`${a.url}/metrics`);
  assert.match(metrics.body, /broker_server_tunnel_forwards_total\{kind="websocket",outcome="forwarded"\} [1-9]/);
  assert.match(metrics.body, /broker_server_tunnel_forwards_total\{kind="response-data",outcome="forwarded"\} 1/);
});

test('client-shutdown: the connection takes no new requests; its in-flight POST still gets its answer after the tunnel closed', async () => {
  const s = await startInProcessServer();
  cleanups.push(() => s.stop());
  const leaving = client(s.url, { clientId: 'leaving' });
  const staying = client(s.url, { clientId: 'staying' });
  await Promise.all([leaving.opened, staying.opened]);
  await waitFor('both ready', () => s.server.pool.members(T).filter((c) => c.state === 'ready').length === 2);

  // Requests alternate; keep sending until one is on the leaving client.
  const answers: Array<Promise<{ status: number; body: string }>> = [];
  const streamed = new Map<string, FakeTunnelClient>();
  for (let i = 0; i < 4 && leaving.requests.length === 0; i++) {
    answers.push(platform(`${s.url}/broker/${T}/echo/before-${i}`, 'POST'));
    await waitFor('the request relayed', () => leaving.requests.length + staying.requests.length === i + 1);
  }
  assert.equal(leaving.requests.length, 1);
  for (const r of staying.requests) streamed.set(streamingIdOf(r), staying);
  const inFlight = streamingIdOf(leaving.requests[0]!);

  leaving.sendRaw(encodeEvent('client-event', [{ ts: Date.now(), event: { type: 'client-shutdown' } }]));
  await waitFor('the leaving connection draining', () => s.server.pool.members(T).find((c) => c.identity?.clientId === 'leaving')?.state === 'draining');

  const before = staying.requests.length;
  const after = Array.from({ length: 4 }, (_, i) => platform(`${s.url}/broker/${T}/echo/after-${i}`));
  await waitFor('4 new requests on the staying client', () => staying.requests.length === before + 4);
  assert.equal(leaving.requests.length, 1, 'no new request went to the client that is shutting down');

  // The leaving client closes its tunnel, then uploads the answer it was still working on.
  leaving.close();
  await waitFor('the leaving connection gone', () => !s.server.pool.members(T).some((c) => c.identity?.clientId === 'leaving'));
  const upload = await postResponseData(s.url, T, inFlight, [encodeResponseHead({ status: 201, headers: {} }), Buffer.from('late but fine')]);
  assert.deepEqual(upload, { status: 200, body: '{}' });

  for (const r of staying.requests) {
    await postResponseData(s.url, T, streamingIdOf(r), [encodeResponseHead({ status: 200, headers: {} }), Buffer.from('ok')]);
  }
  const settled = await Promise.all([...answers, ...after]);
  assert.ok(settled.some((a) => a.status === 201 && a.body === 'late but fine'));
  assert.ok(settled.every((a) => a.status === 200 || a.status === 201), settled.map((a) => a.status).join(','));
});

test('registration: re-sent periodically with open_tunnels and at once when the dispatcher asks; pings carry peer_url and connection_role', async () => {
  let hint = false;
  const dispatcher = await fakeDispatcher([], { registerHint: () => hint });
  const s = await startInProcessServer({
    DISPATCHER_URL: dispatcher.url,
    BROKER_SERVER_ID: '7',
    BROKER_SERVER_PEER_URL: 'http://broker-server-7:7341',
    BROKER_SERVER_REGISTER_INTERVAL_MS: '300',
    BROKER_SERVER_PEER_ROUTING: 'false',
  });
  let stopped = false;
  cleanups.push(() => (stopped ? undefined : s.stop()));
  const registrations = () => dispatcher.calls.filter((c) => c.method === 'POST' && c.url.startsWith('/internal/brokerservers/7?'));
  await waitFor('two registrations', () => registrations().length >= 2);
  const first = JSON.parse(registrations()[0]!.body) as { data: { attributes: Record<string, unknown> } };
  assert.equal(first.data.attributes.peer_url, 'http://broker-server-7:7341');
  assert.equal(first.data.attributes.open_tunnels, 0);
  assert.match(String(first.data.attributes.health_check_link), /^http:\/\/.+\/healthcheck$/);

  const c = client(s.url, { clientId: 'pinger', role: 'secondary' });
  await c.opened;
  await waitFor('a registration counting the tunnel', () => registrations().some((r) => JSON.parse(r.body).data.attributes.open_tunnels === 1));
  c.ping(Date.now() - 5);
  const ping = await waitFor('client-pinged', () => dispatcher.calls.find((x) => x.url.includes('request_type=client-pinged')));
  const q = new URL(ping.url, 'http://d').searchParams;
  assert.equal(q.get('connection_role'), 'secondary');
  assert.equal(q.get('broker_client_id'), 'pinger');
  assert.equal(JSON.parse(ping.body).data.attributes.peer_url, 'http://broker-server-7:7341');

  // The dispatcher forgot us: the next report's answer asks to register; registration and the tunnel follow at once.
  hint = true;
  const mark = dispatcher.calls.length;
  c.ping();
  await waitFor('registration and client-connected re-sent after the hint', () => {
    const later = dispatcher.calls.slice(mark);
    const i = later.findIndex((x) => x.url.includes('request_type=client-pinged'));
    return i >= 0 && later.slice(i).some((x) => x.url.startsWith('/internal/brokerservers/7?')) && later.slice(i).some((x) => x.url.includes('request_type=client-connected')) ? true : undefined;
  });
  hint = false;

  // After server-stopping nothing registers it again.
  stopped = true;
  await s.stop();
  const stopAt = dispatcher.calls.findIndex((x) => x.method === 'DELETE' && x.url.startsWith('/internal/brokerservers/7?'));
  assert.ok(stopAt >= 0);
  assert.ok(!dispatcher.calls.slice(stopAt).some((x) => x.method === 'POST' && x.url.startsWith('/internal/brokerservers/7?')));
});
