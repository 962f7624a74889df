// Hostile requests against the broker client's local (webhook) port (issue 6, "Bad input"): path
// traversal, oversized heads and bodies, request smuggling; and a broker server sending the
// client oversized tunnel frames. Every local-port case runs while a steady trickle of
// legitimate webhooks goes through the same client and server: they must all succeed, the
// client must stay healthy, and the webhook destination must see only the legitimate ones.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { httpStatus } from '../support/http-status.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { FakeBrokerServer } from '../support/fake-broker-server.js';
import { rawExchange, type RawAnswer } from '../support/raw-http.js';
import { assertBodyRefused, assertNothingSmuggled, assertSmugglingRefused, attackHarness, summary } from '../support/hostile.js';
import { FAILURES } from '../../src/protocol/failures.js';

const token = randomUUID();
const BODY_LIMIT = 64 * 1024;
const LEGIT = '/webhook/legit/';

const group = new ProcessGroup();
let api: Origin;
let origin: Origin;
let serverUrl: string;
let client: RunningProcess;
let clientPort: number;
let clientUrl: string;

const attacks = attackHarness({
  destination: () => api,
  legitPrefix: LEGIT,
  platformUrl: (p) => `${clientUrl}/${p}`,
  load: { mix: { get: 0, post: 1 } },
  proc: () => client,
  baseUrl: () => clientUrl,
});
const { underAttack } = attacks;

before(async () => {
  api = await startOrigin();
  origin = await startOrigin();
  const serverAccept = await writeAcceptFile({ public: [{ method: 'any', path: '/*' }], private: [{ method: 'POST', path: '/webhook/*', origin: '${API_URL}' }] });
  const port = await freePort();
  serverUrl = `http://127.0.0.1:${port}`;
  const server = group.broker('server', 'server', { PORT: String(port), BROKER_SERVER_HOST: '127.0.0.1', ACCEPT: serverAccept, API_URL: api.url, LOG_LEVEL: 'info' });
  await server.waitForOutput('broker server listening', 30_000);
  const clientAccept = await writeAcceptFile({ public: [{ method: 'POST', path: '/webhook/*' }], private: [{ method: 'GET', path: '/*', origin: '${ORIGIN_URL}' }] });
  clientPort = await freePort();
  clientUrl = `http://127.0.0.1:${clientPort}`;
  client = group.broker('client', 'client', {
    BROKER_TOKEN: token,
    BROKER_SERVER_URL: serverUrl,
    PORT: String(clientPort),
    ACCEPT: clientAccept,
    PREFLIGHT_CHECKS_ENABLED: 'false',
    ORIGIN_URL: origin.url,
    BROKER_CLIENT_WEBHOOK_BODY_LIMIT: String(BODY_LIMIT),
    LOG_LEVEL: 'info',
  });
  await waitFor('the client ready', async () => (await httpStatus(`${clientUrl}/readyz`)) === 200, { timeoutMs: 60_000 });
});

after(async () => {
  await group.stopAll();
  await api?.close();
  await origin?.close();
  if (attacks.rows.length > 0) console.log(attacks.table('client webhook port', 'destination'));
});

const postEmpty = (path: string, extra = '') => `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n${extra}connection: close\r\n\r\n`;

test('path traversal on the webhook port is refused (401 filter-blocked) and never reaches the destination', async () => {
  const paths = [
    '/webhook/../hostile-secret',
    '/webhook/%2e%2e/hostile-secret',
    '/webhook/%2E%2E/hostile-secret',
    '/webhook/..%2fhostile-secret',
    '/webhook/%2e%2e%2fhostile-secret',
    '/webhook/..%5chostile-secret',
    '/webhook/%252e%252e/hostile-secret',
    '/webhook/x/../../hostile-secret',
    '/webhook/..\\hostile-secret',
  ];
  await underAttack('traversal: `..`, `%2e%2e`, `%2f`, `%5c`, double-encoded', async () => {
    const answers: RawAnswer[] = [];
    for (const path of paths) {
      const a = await rawExchange(clientPort, postEmpty(path), { untilAnswer: true });
      assert.equal(a.status, 401, `${path} → ${a.raw.slice(0, 200)}`);
      assert.equal(a.headers['x-broker-failure'], FAILURES.FILTER_BLOCKED.reason, path);
      assert.match(a.body, /path traversal/);
      answers.push(a);
    }
    return summary(answers);
  });
  assert.ok(!api.seen.some((s) => s.url.includes('hostile-secret')));
});

test('oversized request heads on the webhook port get 431 headers-too-large', async () => {
  await underAttack('oversized header (20 KiB) / request line (20 KiB)', async () => {
    const bigHeader = await rawExchange(clientPort, postEmpty('/webhook/hostile-big-header', `x-big: ${'a'.repeat(20_000)}\r\n`));
    const bigLine = await rawExchange(clientPort, postEmpty(`/webhook/hostile-${'a'.repeat(20_000)}`));
    for (const a of [bigHeader, bigLine]) {
      assert.equal(a.status, 431, a.raw.slice(0, 300));
      assert.equal(a.headers['x-broker-failure'], FAILURES.HEADERS_TOO_LARGE.reason);
      assert.ok(a.closed);
    }
    return summary([bigHeader, bigLine]);
  });
  assert.ok(!api.seen.some((s) => s.url.includes('hostile')));
});

test('a webhook body above BROKER_CLIENT_WEBHOOK_BODY_LIMIT gets 413 body-too-large and the client stops reading', async () => {
  const head = (framing: string) => `POST /webhook/hostile-body HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n${framing}\r\n`;
  await underAttack('body: declared 1 GiB / chunked without end / 200 KiB', () => assertBodyRefused(clientPort, head));
  assert.ok(!api.seen.some((s) => s.url.includes('hostile-body')));
});

test('request smuggling on the webhook port is refused with 400 bad-request; a request hidden in a body stays a body', async () => {
  const hiddenBody = `POST /webhook/smuggled-hidden HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n`;
  await underAttack(
    'smuggling: CL+TE, TE+CL, 2×CL, TE chunked,identity, TE identity, obs-fold, bad chunk size, bare LF',
    () =>
      assertSmugglingRefused(clientPort, {
        post: (path, headers, body) => `POST /webhook/${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n${headers}\r\n${body}`,
        smuggled: 'POST /webhook/smuggled-second HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n',
        bareLf: (smuggled) => `POST /webhook/smuggle-lf HTTP/1.1\nhost: 127.0.0.1\ncontent-length: 0\n\n${smuggled}`,
        hiddenBody,
      }),
    (s) => s.url === '/webhook/smuggle-hidden-body',
  );
  assertNothingSmuggled(api, '/webhook/smuggle-hidden-body', hiddenBody);
});

test('a server sending oversized tunnel frames: above BROKER_CLIENT_MAX_FRAME_BYTES the frame is dropped (logged), above the websocket cap the tunnel drops and reconnects (logged)', async () => {
  const MAX_FRAME = 1024 * 1024;
  const fake = await new FakeBrokerServer().start();
  try {
    const victim = group.broker('frame-client', 'client', {
      BROKER_TOKEN: randomUUID(),
      BROKER_SERVER_URL: fake.url,
      PORT: String(await freePort()),
      ACCEPT: await writeAcceptFile({ public: [], private: [] }),
      PREFLIGHT_CHECKS_ENABLED: 'false',
      BROKER_CLIENT_MAX_FRAME_BYTES: String(MAX_FRAME),
      LOG_LEVEL: 'info',
    });
    await waitFor('both tunnels at the fake server', () => fake.open().length === 2, { timeoutMs: 30_000 });
    await victim.waitForOutput('tunnel ready');
    const primary = fake.open().find((c) => c.role === 'primary')!;
    const secondary = fake.open().find((c) => c.role === 'secondary')!;
    const connectionsBefore = fake.connections.length;

    // Above the decode cap, within what ws accepts: dropped with a log line; the tunnel stays.
    fake.sendRaw(primary, `4${JSON.stringify(['request', { url: '/x', method: 'GET', pad: 'x'.repeat(MAX_FRAME * 2) }])}`);
    await victim.waitForOutput(/"code":"FRAME_TOO_LARGE"[^\n]*dropped a bad tunnel frame|dropped a bad tunnel frame[^\n]*"code":"FRAME_TOO_LARGE"/);
    const pongs = primary.enginePongs;
    fake.sendRaw(primary, '2');
    await waitFor('the primary tunnel still answering engine.io pings', () => primary.enginePongs > pongs);
    assert.equal(primary.closed, false);
    assert.equal(fake.connections.length, connectionsBefore);

    // Above the websocket cap (a frame header announcing 128 MiB; nothing else is sent): the
    // client drops the tunnel at once, logs it, and reconnects; the other tunnel stays.
    const header = Buffer.alloc(10);
    header[0] = 0x81; // FIN + text
    header[1] = 127; // 64-bit length follows
    header.writeBigUInt64BE(BigInt(128 * 1024 * 1024), 2);
    (primary.ws as unknown as { _socket: Socket })._socket.write(header);
    await waitFor('the primary tunnel closed by the client', () => primary.closed, { timeoutMs: 15_000 });
    // ws destroys the socket on the oversized header: the close is abnormal (1006) after the error.
    await victim.waitForOutput(/"role":"primary"[^\n]*"err":"Max payload size exceeded"[^\n]*"msg":"tunnel error"/);
    await victim.waitForOutput(/"role":"primary"[^\n]*"code":1006[^\n]*"msg":"tunnel closed; reconnecting"/);
    await waitFor('the primary tunnel back', () => fake.open().filter((c) => c.role === 'primary').length === 1 && fake.connections.length > connectionsBefore, { timeoutMs: 30_000 });
    assert.equal(secondary.closed, false, 'the secondary tunnel was not affected');
    assert.equal(victim.child.exitCode, null);
    attacks.rows.push({ case: 'server → client frame > BROKER_CLIENT_MAX_FRAME_BYTES / > websocket cap', status: 'frame dropped, tunnel kept / tunnel dropped (1006), reconnected', reason: '(log: dropped a bad tunnel frame FRAME_TOO_LARGE / tunnel error: Max payload size exceeded)', legitSent: 0, legitFailed: 0, originSawAttack: false });
  } finally {
    await fake.stop();
  }
});

test('no token in any output', () => {
  assert.ok(!group.allOutput().includes(token), 'the broker token appeared in a log line');
});
