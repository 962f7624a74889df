// Issue 6, faults: a bad origin behind the broker client — slow (30 s), resetting connections,
// answering 5xx. Checked twice: the answer head the client uploads (status + errorType, recorded
// by a scripted broker server) and what the platform gets through our real server (status,
// x-broker-failure, body), with real client and server processes on 127.0.0.1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { FakeBrokerServer } from '../support/fake-broker-server.js';
import { ProcessGroup } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { waitFor } from '../support/wait.js';
import { startBrokerPair, platformRequest, scrape, metricValue, type BrokerPair } from '../support/broker-pair.js';
import { FAILURES } from '../../src/protocol/failures.js';

/** An origin that misbehaves on purpose; counts requests per path. */
async function startBadOrigin(): Promise<{ url: string; seen: Map<string, number>; close(): Promise<void> }> {
  const seen = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://o').pathname;
    seen.set(path, (seen.get(path) ?? 0) + 1);
    req.resume();
    const parts = path.split('/').filter(Boolean);
    if (parts[0] === 'reset-before-head') return void req.socket.resetAndDestroy();
    if (parts[0] === 'reset-mid-body') {
      // Announces `total` bytes, sends a tenth, then resets: a body that must never look whole.
      const total = Number(parts[1]);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      res.write(Buffer.alloc(Math.floor(total / 10), 7), () => setTimeout(() => req.socket.resetAndDestroy(), 50));
      return;
    }
    if (parts[0] === 'status') {
      const code = Number(parts[1]);
      res.writeHead(code, { 'content-type': 'application/json', 'x-origin': 'bad' });
      return void res.end(JSON.stringify({ origin: 'says', code }));
    }
    if (parts[0] === 'slow') {
      const timer = setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ slow: true }));
      }, Number(parts[1]));
      res.on('close', () => clearTimeout(timer));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, path }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let origin: Awaited<ReturnType<typeof startBadOrigin>>;
let pair: BrokerPair;
const fake = new FakeBrokerServer();
const group = new ProcessGroup();
const results: string[] = [];
const REQUEST_TIMEOUT_MS = 5000;

before(async () => {
  origin = await startBadOrigin();
  // The platform's view: our server (answers time out after 5 s) and our client.
  pair = await startBrokerPair({ originUrl: origin.url, serverEnv: { BROKER_SERVER_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) } });
  // The wire view: the same client program against a scripted server that records answer heads.
  await fake.start();
  const accept = await writeAcceptFile({ private: [{ method: 'any', path: '/*', origin: '${ORIGIN_URL}' }], public: [] });
  group.broker('wire-client', 'client', { BROKER_TOKEN: randomUUID(), BROKER_SERVER_URL: fake.url, PORT: String(await freePort()), ACCEPT: accept, PREFLIGHT_CHECKS_ENABLED: 'false', ORIGIN_URL: origin.url, LOG_LEVEL: 'info' });
  await waitFor('the wire client tunnels', () => fake.open().length === 2, { timeoutMs: 60_000 });
});

after(async () => {
  const out = await pair?.stop();
  await group.stopAll();
  await fake.stop();
  await origin?.close();
  if (results.length) console.log(`faults-origin results:\n  ${results.join('\n  ')}`);
  assert.ok(!out?.includes(pair.token), 'the token appears in process output');
});

/** Sends one request event to the wire client and returns the answer head and body it uploaded. */
async function wireAnswer(path: string, method = 'GET', timeoutMs = 30_000) {
  const streamingID = randomUUID();
  fake.emit(fake.open()[0]!, 'request', { url: path, method, headers: { 'content-type': 'application/json' }, streamingID, ...(method === 'POST' ? { body: { $binary: Buffer.from('{"a":1}').toString('base64') } } : {}) });
  return waitFor(`the answer upload for ${path}`, () => fake.responses.get(streamingID), { timeoutMs });
}

for (const code of [500, 502, 503]) {
  test(`origin ${code}: errorType DOWNSTREAM_SERVER_ERROR on the wire; the platform gets the origin's ${code} and body unchanged, GET and POST sent to the origin once`, async () => {
    const wire = await wireAnswer(`/status/${code}/wire`);
    assert.equal(wire.head.status, code);
    assert.equal(wire.head.errorType, 'DOWNSTREAM_SERVER_ERROR');
    for (const method of ['GET', 'POST']) {
      const path = `/status/${code}/${method.toLowerCase()}-${randomUUID()}`;
      const r = await platformRequest(pair.platformUrl(path), { method, body: method === 'POST' ? '{"a":1}' : undefined, headers: { 'content-type': 'application/json' }, deadlineMs: 30_000 });
      assert.equal(r.status, code, `${method} status`);
      assert.equal(r.failure, undefined, 'an origin answer is not a broker failure');
      assert.deepEqual(JSON.parse(r.body.toString()), { origin: 'says', code });
      assert.equal(origin.seen.get(path), 1, `${method} reached the origin ${origin.seen.get(path)} times (a 5xx answer is an answer: never retried)`);
    }
    results.push(`origin ${code}: wire errorType ${wire.head.errorType}; platform GET/POST ${code} passed through, origin hit once each`);
  });
}

test('origin resets the connection before answering: 502 errorType DOWNSTREAM_ERROR (contract: other errors), platform 502 with the code in the body, not retried', async () => {
  const wire = await wireAnswer('/reset-before-head/wire');
  assert.equal(wire.head.status, 502);
  assert.equal(wire.head.errorType, 'DOWNSTREAM_ERROR');
  for (const method of ['GET', 'POST']) {
    const path = `/reset-before-head/${method.toLowerCase()}-${randomUUID()}`;
    const r = await platformRequest(pair.platformUrl(path), { method, body: method === 'POST' ? '{}' : undefined, deadlineMs: 30_000 });
    assert.equal(r.status, 502);
    assert.equal((JSON.parse(r.body.toString()) as { code: string }).code, 'DOWNSTREAM_ERROR');
    // The client retries only refused connections (nothing was sent); a reset may have been processed.
    assert.equal(origin.seen.get(path), 1, `${method} reached the origin ${origin.seen.get(path)} times`);
  }
  results.push('origin reset before head: wire 502 DOWNSTREAM_ERROR; platform GET/POST 502 {code: DOWNSTREAM_ERROR}, origin hit once');
});

for (const total of [1000, 1_000_000]) {
  test(`origin resets mid-body (${total} bytes announced): the platform sees an aborted body or a clean 502, never a short body that looks complete`, async () => {
    const path = `/reset-mid-body/${total}/${randomUUID()}`;
    const r = await platformRequest(pair.platformUrl(path), { deadlineMs: 60_000 });
    assert.equal(r.hung, false);
    assert.ok(!(r.complete && r.status === 200 && r.bytes < total), `a ${r.bytes}-byte body of ${total} ended as if complete`);
    assert.ok(!r.complete || r.status >= 500, `status ${r.status}, complete ${r.complete}`);
    results.push(`origin reset mid-body (${total} B): platform ${r.status} ${r.failure ?? ''} ${r.complete ? 'complete error answer' : `aborted after ${r.bytes} B (${r.aborted})`}`);
  });
}

test(`origin slow (30 s): the platform gets 504 response-timeout after BROKER_SERVER_REQUEST_TIMEOUT_MS (${REQUEST_TIMEOUT_MS} ms); the late answer is refused cleanly and nothing stays pending`, async () => {
  const started = Date.now();
  const getPath = `/slow/30000/get-${randomUUID()}`;
  const [get, post] = await Promise.all([
    platformRequest(pair.platformUrl(getPath), { deadlineMs: 60_000 }),
    platformRequest(pair.platformUrl(`/slow/30000/post-${randomUUID()}`), { method: 'POST', body: '{}', deadlineMs: 60_000 }),
  ]);
  const elapsed = Date.now() - started;
  for (const [name, r] of [['GET', get], ['POST', post]] as const) {
    assert.equal(r.status, 504, `${name} status`);
    assert.equal(r.failure, FAILURES.RESPONSE_TIMEOUT.reason, `${name} reason`);
  }
  // A non-idempotent request that timed out may have been applied: the platform is told so.
  assert.match(post.body.toString(), /may have reached the origin/);
  // The client still waits on the origin for both (no origin timeout in the contract): its gauge shows them.
  const clientMetrics = `http://127.0.0.1:${pair.clientPort}/metrics`;
  assert.ok(metricValue(await scrape(clientMetrics), 'broker_client_relays_in_flight') >= 2, 'the client does not count the relays waiting on the origin');
  // Meanwhile the client keeps serving.
  const quick = await platformRequest(pair.platformUrl('/quick'), { deadlineMs: 30_000 });
  assert.equal(quick.status, 200);
  // The origin answers at 30 s. A late upload is refused (unknown stream) and the client logs
  // it; a late answer over the tunnel (our client and server) is dropped by the server, which
  // logs it. Neither crashes anything.
  await pair.client.waitForOutput(new RegExp(`"url":"${getPath}".*"msg":"(failed to deliver the answer to the broker server|relayed a request)"`), 60_000);
  const late = pair.client.output().split('\n').find((l) => l.includes(`"url":"${getPath}"`) && /failed to deliver|relayed a request/.test(l))!;
  if (late.includes('"via":"tunnel"')) await pair.server.waitForOutput(/answer over the tunnel for a request no longer waiting here/, 10_000);
  else assert.match(late, /failed to deliver the answer to the broker server/);
  const lateAfter = Date.now() - started;
  assert.ok(lateAfter >= 25_000, `the late answer came after ${lateAfter} ms (the origin answers at 30 s)`);
  await waitFor('no relay in flight at the server', async () => metricValue(await scrape(`${pair.serverUrl}/metrics`), 'broker_server_relays_in_flight') === 0, { timeoutMs: 30_000 });
  await waitFor('no relay in flight at the client', async () => metricValue(await scrape(clientMetrics), 'broker_client_relays_in_flight') === 0, { timeoutMs: 30_000 });
  assert.equal(pair.client.child.exitCode, null, 'the client is still running');
  const again = await platformRequest(pair.platformUrl('/quick-after'), { deadlineMs: 30_000 });
  assert.equal(again.status, 200);
  results.push(`origin slow 30 s: GET and POST 504 response-timeout (both after ~${Math.round(elapsed / 1000)} s), late answers refused (after ${Math.round(lateAfter / 1000)} s), in-flight back to 0`);
});

test('a request with x-broker-ws-response to a 30 s origin also ends in 504 response-timeout', async () => {
  const r = await platformRequest(pair.platformUrl(`/slow/30000/ack-${randomUUID()}`), { headers: { 'x-broker-ws-response': 'true' }, deadlineMs: 60_000 });
  assert.equal(r.status, 504);
  assert.equal(r.failure, FAILURES.RESPONSE_TIMEOUT.reason);
});
