// Hostile requests against the broker server's platform API (issue 6, "Bad input"): path
// traversal, oversized heads and bodies, request smuggling, a flood of unknown tokens with peer
// routing on, oversized tunnel frames, slowloris. Every case runs while a steady trickle of
// legitimate platform requests goes through the same server and client: they must all succeed,
// the server must stay healthy, and the origin must see nothing but the legitimate requests.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { Pool } from 'undici';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { httpStatus } from '../support/http-status.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { FakeTunnelClient } from '../support/fake-tunnel-client.js';
import { rawExchange, slowloris, writeUntilClosed, type RawAnswer } from '../support/raw-http.js';
import { assertBodyRefused, assertNothingSmuggled, assertSmugglingRefused, attackHarness, summary } from '../support/hostile.js';
import { closeServer, listen } from '../../src/http/server-helpers.js';
import { FAILURES } from '../../src/protocol/failures.js';

const token = randomUUID();
const BODY_LIMIT = 64 * 1024;
const MAX_FRAME = 1024 * 1024;
const HEADERS_TIMEOUT_MS = 1500;
const REFRESH_MS = 2000;
const LEGIT = '/echo/legit/';

const group = new ProcessGroup();
let origin: Origin;
let server: RunningProcess;
let port: number;
let serverUrl: string;
let dispatcher: Server;
/** Requests the fake dispatcher received, by path. */
const dispatcherCalls = new Map<string, number>();

const attacks = attackHarness({
  destination: () => origin,
  legitPrefix: LEGIT,
  platformUrl: (p) => `${serverUrl}/broker/${token}/${p}`,
  proc: () => server,
  baseUrl: () => serverUrl,
});
const { underAttack } = attacks;

function dispatcherCount(path: string): number {
  return dispatcherCalls.get(path) ?? 0;
}

before(async () => {
  origin = await startOrigin();
  dispatcher = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    dispatcherCalls.set(path, (dispatcherCalls.get(path) ?? 0) + 1);
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"data":[]}');
  });
  const dispatcherPort = await listen(dispatcher, 0, '127.0.0.1');
  port = await freePort();
  serverUrl = `http://127.0.0.1:${port}`;
  server = group.broker('server', 'server', {
    PORT: String(port),
    BROKER_SERVER_HOST: '127.0.0.1',
    BROKER_SERVER_ID: '1',
    BROKER_SERVER_PEER_URL: serverUrl,
    DISPATCHER_URL: `http://127.0.0.1:${dispatcherPort}`,
    BROKER_SERVER_ROUTING_REFRESH_MS: String(REFRESH_MS),
    BROKER_SERVER_BODY_LIMIT: String(BODY_LIMIT),
    SOCKET_MAX_RESPONSE_LENGTH: String(MAX_FRAME),
    BROKER_SERVER_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
    LOG_LEVEL: 'info',
  });
  await server.waitForOutput('broker server listening', 30_000);
  const accept = await writeAcceptFile({ private: [{ method: 'any', path: '/*', origin: '${ORIGIN_URL}' }], public: [] });
  group.broker('client', 'client', {
    BROKER_TOKEN: token,
    BROKER_SERVER_URL: serverUrl,
    PORT: String(await freePort()),
    ACCEPT: accept,
    PREFLIGHT_CHECKS_ENABLED: 'false',
    ORIGIN_URL: origin.url,
    LOG_LEVEL: 'info',
  });
  await waitFor('the client tunnels and a ready server', async () => {
    if ((await httpStatus(`${serverUrl}/readyz`)) !== 200) return false;
    const res = await fetch(`${serverUrl}/connection-status/${token}`);
    if (res.status !== 200) return false;
    const body = (await res.json()) as { clients: Array<{ state: string }> };
    return body.clients.filter((c) => c.state === 'ready').length === 2;
  }, { timeoutMs: 60_000 });
});

after(async () => {
  await group.stopAll();
  await origin?.close();
  if (dispatcher) await closeServer(dispatcher);
  if (attacks.rows.length > 0) console.log(attacks.table('server', 'origin'));
});

function get(path: string, extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n${extra}connection: close\r\n\r\n`;
}

test('path traversal under /broker/<token>/ is refused (401 filter-blocked) and never reaches the origin', async () => {
  const paths = [
    `/broker/${token}/echo/../hostile-secret`,
    `/broker/${token}/echo/%2e%2e/hostile-secret`,
    `/broker/${token}/echo/%2E%2E/hostile-secret`,
    `/broker/${token}/echo/..%2fhostile-secret`,
    `/broker/${token}/echo/%2e%2e%2fhostile-secret`,
    `/broker/${token}/echo/..%5chostile-secret`,
    `/broker/${token}/echo/%5c..%5chostile-secret`,
    `/broker/${token}/echo/%252e%252e/hostile-secret`,
    `/broker/${token}/echo/./hostile-secret`,
    `/broker/${token}/echo/..;/hostile-secret/..`,
  ];
  await underAttack('traversal: `..`, `%2e%2e`, `%2f`, `%5c`, double-encoded', async () => {
    const answers: RawAnswer[] = [];
    for (const path of paths) {
      const a = await rawExchange(port, get(path), { untilAnswer: true });
      assert.equal(a.status, 401, `${path} → ${a.raw.slice(0, 200)}`);
      assert.equal(a.headers['x-broker-failure'], FAILURES.FILTER_BLOCKED.reason, path);
      assert.match(a.body, /path traversal/);
      answers.push(a);
    }
    // A raw backslash (Node's parser lets it through): some origins treat it as a separator.
    const backslash = await rawExchange(port, get(`/broker/${token}/echo/..\\hostile-secret`), { untilAnswer: true });
    assert.equal(backslash.status, 401, backslash.raw.slice(0, 200));
    assert.equal(backslash.headers['x-broker-failure'], FAILURES.FILTER_BLOCKED.reason);
    answers.push(backslash);
    // Traversal in the token segment is just an unknown token.
    const inToken = await rawExchange(port, get(`/broker/${token}%2f..%2f..%2fhostile-secret/echo/x`), { untilAnswer: true });
    assert.equal(inToken.status, 404);
    assert.equal(inToken.headers['x-broker-failure'], FAILURES.NO_CONNECTION.reason);
    return summary(answers);
  });
  assert.ok(!origin.seen.some((s) => s.url.includes('hostile-secret')));
});

test('oversized request heads get 431 headers-too-large and the connection is closed', async () => {
  await underAttack('oversized header (20 KiB) / request line (20 KiB) / 3,000 headers', async () => {
    const bigHeader = await rawExchange(port, get(`/broker/${token}/echo/hostile-big-header`, `x-big: ${'a'.repeat(20_000)}\r\n`));
    const bigLine = await rawExchange(port, get(`/broker/${token}/echo/hostile-${'a'.repeat(20_000)}`));
    const many = await rawExchange(port, get(`/broker/${token}/echo/hostile-many`, Array.from({ length: 3000 }, (_, i) => `x-h${i}: v\r\n`).join('')));
    for (const a of [bigHeader, bigLine, many]) {
      assert.equal(a.status, 431, a.raw.slice(0, 300));
      assert.equal(a.headers['x-broker-failure'], FAILURES.HEADERS_TOO_LARGE.reason);
      assert.equal(a.headers.connection, 'close');
      assert.ok(a.closed, 'the server closed the connection');
    }
    return summary([bigHeader, bigLine, many]);
  });
  assert.ok(!origin.seen.some((s) => s.url.includes('hostile')));
});

test('a body above BROKER_SERVER_BODY_LIMIT gets 413 body-too-large and the server stops reading', async () => {
  const head = (framing: string) => `POST /broker/${token}/echo/hostile-body HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/octet-stream\r\n${framing}\r\n`;
  await underAttack('body: declared 1 GiB / chunked without end / 200 KiB', () => assertBodyRefused(port, head));
  assert.ok(!origin.seen.some((s) => s.url.includes('hostile-body')));
});

test('request smuggling is refused with 400 bad-request; a request hidden in a body stays a body', async () => {
  const hiddenBody = `GET /broker/${token}/echo/smuggled-hidden HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`;
  await underAttack(
    'smuggling: CL+TE, TE+CL, 2×CL, TE chunked,identity, TE identity, obs-fold, bad chunk size, bare LF',
    () =>
      assertSmugglingRefused(port, {
        post: (path, headers, body) => `POST /broker/${token}/echo/${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n${headers}\r\n${body}`,
        smuggled: `GET /broker/${token}/echo/smuggled-second HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`,
        bareLf: (smuggled) => `POST /broker/${token}/echo/smuggle-lf HTTP/1.1\nhost: 127.0.0.1\ncontent-length: 0\n\n${smuggled}`,
        hiddenBody,
      }),
    (s) => s.url === '/echo/smuggle-hidden-body',
  );
  assertNothingSmuggled(origin, '/echo/smuggle-hidden-body', hiddenBody);
});

test('5,000 requests with unknown tokens: all 404 no-connection, a bounded number of dispatcher lookups', async () => {
  const TOTAL = 5000;
  const CONCURRENCY = 50;
  const statuses = new Map<string, number>();
  let lookups = 0;
  let elapsedMs = 0;
  await underAttack(`${TOTAL} unknown tokens (concurrency ${CONCURRENCY}), peer routing on`, async () => {
    const before = dispatcherCount('/internal/connections');
    const started = Date.now();
    const pool = new Pool(serverUrl, { connections: CONCURRENCY, pipelining: 1 });
    let next = 0;
    const worker = async () => {
      while (next < TOTAL) {
        next++;
        const r = await pool.request({ path: `/broker/${randomUUID()}/echo/hostile-unknown`, method: 'GET', headersTimeout: 30_000, bodyTimeout: 30_000 });
        await r.body.dump();
        const key = `${r.statusCode} ${String(r.headers['x-broker-failure'] ?? '-')}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    await pool.close();
    elapsedMs = Date.now() - started;
    lookups = dispatcherCount('/internal/connections') - before;
    return { status: '404', reason: FAILURES.NO_CONNECTION.reason };
  });
  assert.deepEqual([...statuses], [['404 no-connection', TOTAL]]);
  // Misses share one refresh at most once a second, on top of the periodic refresh: a few per refresh interval.
  const bound = Math.ceil(elapsedMs / 1000) + Math.ceil(elapsedMs / REFRESH_MS) + 2;
  console.log(`unknown-token flood: ${TOTAL} requests in ${elapsedMs} ms → ${lookups} routing lookups at the dispatcher (bound ${bound})`);
  attacks.rows[attacks.rows.length - 1]!.status = `404 (${TOTAL}× in ${(elapsedMs / 1000).toFixed(1)} s; ${lookups} dispatcher lookups)`;
  assert.ok(lookups <= bound, `${lookups} routing lookups for ${TOTAL} unknown-token requests in ${elapsedMs} ms (bound ${bound})`);
  assert.ok(!origin.seen.some((s) => s.url.includes('hostile-unknown')));
});

test('a tunnel frame above SOCKET_MAX_RESPONSE_LENGTH closes that tunnel (1009, logged); the token\'s other tunnels keep serving', async () => {
  const scratch = randomUUID();
  await underAttack('websocket frame > SOCKET_MAX_RESPONSE_LENGTH (same token, unidentified; other token, identified); polling upload too large', async () => {
    const logged = server.output().split('tunnel message larger than SOCKET_MAX_RESPONSE_LENGTH; tunnel closed').length - 1;
    // A second connection on the token under load sends an oversized first message.
    const rogue = new FakeTunnelClient(serverUrl, token, { identify: false, clientId: 'hostile-frame' });
    await rogue.opened;
    rogue.sendRaw('x'.repeat(MAX_FRAME + 1024));
    const closed = await rogue.closed;
    assert.equal(closed.code, 1009);
    // An identified tunnel (its own token) sending one: closed, and gone from the pool.
    const identified = new FakeTunnelClient(serverUrl, scratch, { clientId: 'hostile-frame-2' });
    await identified.opened;
    await waitFor('the identified rogue tunnel', async () => (await httpStatus(`${serverUrl}/connection-status/${scratch}`)) === 200);
    identified.sendRaw(JSON.stringify(['x'.repeat(MAX_FRAME * 2)]));
    assert.equal((await identified.closed).code, 1009);
    await waitFor('the rogue tunnel out of the pool', async () => (await httpStatus(`${serverUrl}/connection-status/${scratch}`)) === 404);
    await waitFor('two log lines naming the frame limit', () => server.output().split('tunnel message larger than SOCKET_MAX_RESPONSE_LENGTH; tunnel closed').length - 1 >= logged + 2);
    // Long-polling: an upload declared above the cap is refused before it is read.
    const open = await fetch(`${serverUrl}/primus/${scratch}/?EIO=4&transport=polling`);
    const sid = /"sid":"([^"]+)"/.exec(await open.text())?.[1];
    assert.ok(sid);
    const upload = await rawExchange(port, async (socket, count) => {
      socket.write(`POST /primus/${scratch}/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: text/plain;charset=UTF-8\r\ncontent-length: ${MAX_FRAME * 64}\r\n\r\n`);
      await writeUntilClosed(socket, Buffer.alloc(64 * 1024, 0x78), MAX_FRAME * 64, count);
    }, { timeoutMs: 60_000 });
    assert.equal(upload.status, 413, upload.raw.slice(0, 300));
    assert.equal(upload.headers['x-broker-failure'], FAILURES.FRAME_TOO_LARGE.reason);
    assert.ok(upload.closed && upload.written < MAX_FRAME * 64, `the attacker wrote ${upload.written} bytes`);
    return { status: 'ws close 1009 / polling 413', reason: 'frame-too-large (polling)' };
  });
  // The legitimate client still has both tunnels.
  const res = await fetch(`${serverUrl}/connection-status/${token}`);
  const body = (await res.json()) as { clients: Array<{ state: string; brokerClientId: string }> };
  assert.equal(body.clients.filter((c) => c.state === 'ready').length, 2);
  assert.ok(!body.clients.some((c) => c.brokerClientId?.startsWith('hostile')));
});

test('slowloris: connections trickling their headers get 408 headers-timeout and are closed; others are served', async () => {
  const CONNECTIONS = 100;
  await underAttack(`slowloris: ${CONNECTIONS} connections trickling headers, 30 silent (BROKER_SERVER_HEADERS_TIMEOUT_MS=${HEADERS_TIMEOUT_MS})`, async () => {
    const silent = Promise.all(Array.from({ length: 30 }, () => rawExchange(port, async () => undefined, { timeoutMs: 60_000 })));
    const slow = await slowloris(port, CONNECTIONS, `GET /broker/${token}/echo/hostile-slow HTTP/1.1`, 200, 60_000);
    const quiet = await silent;
    for (const a of slow) {
      assert.ok(a.closed, 'the server closed the slow connection');
      assert.equal(a.status, 408, a.raw.slice(0, 300));
      assert.equal(a.headers['x-broker-failure'], FAILURES.HEADERS_TIMEOUT.reason);
    }
    // A connection that never sends a byte is closed as well (408, or a plain close).
    for (const a of quiet) assert.ok(a.closed && (a.status === 408 || a.status === 0), a.raw.slice(0, 300));
    return summary(slow);
  });
  assert.ok(!origin.seen.some((s) => s.url.includes('hostile-slow')));
});

test('no token in any output', () => {
  assert.ok(!group.allOutput().includes(token), 'the broker token appeared in a log line');
});
