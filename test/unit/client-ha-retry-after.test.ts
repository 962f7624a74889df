// A waiting HA client follows the dispatcher's Retry-After exactly (plus ≤ 10% jitter) however
// long it has waited, so a slot that frees is taken within one Retry-After — not after an
// error backoff grown to 30 s. Errors without Retry-After still back off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { FakeBrokerServer } from '../support/fake-broker-server.js';
import { startTestClient } from '../support/client-harness.js';
import { waitFor } from '../support/wait.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';
import { retryAfterDelay } from '../../src/client/allocation.js';

test('retryAfterDelay: the asked wait plus at most 10%, floored and capped', () => {
  assert.equal(retryAfterDelay(2000, 30_000, () => 0), 2000);
  assert.equal(retryAfterDelay(2000, 30_000, () => 0.999), 2200);
  assert.equal(retryAfterDelay(0, 30_000, () => 0), 100, 'Retry-After: 0 is not a busy loop');
  assert.equal(retryAfterDelay(3_600_000, 30_000, () => 0), 30_000, 'capped at the backoff cap');
  for (let i = 0; i < 100; i++) {
    const d = retryAfterDelay(1000);
    assert.ok(d >= 1000 && d <= 1100, `${d} outside [1000, 1100]`);
  }
});

test('a client refused many times (429/503 + Retry-After) keeps asking every Retry-After and takes the freed slot', async (t) => {
  const fake = await new FakeBrokerServer().start();
  const REFUSALS = 7;
  const posts: number[] = [];
  let freedAt = 0;
  const dispatcher = createServer((req, res) => {
    req.resume();
    if (req.method !== 'POST') {
      res.writeHead(204);
      return res.end();
    }
    posts.push(Date.now());
    if (posts.length <= REFUSALS) {
      // Mostly "token full", once "no live server": both carry Retry-After and both are followed.
      const status = posts.length === 3 ? 503 : 429;
      res.writeHead(status, { 'retry-after': '1', 'content-type': 'application/vnd.api+json' });
      return res.end(JSON.stringify({ errors: [{ status: String(status), code: status === 429 ? 'MAX_CLIENTS_PER_TOKEN' : 'NO_LIVE_SERVER' }] }));
    }
    res.writeHead(201, { 'content-type': 'application/vnd.api+json' });
    res.end(JSON.stringify({ data: { attributes: { server_id: '1', server_url: fake.url } } }));
  });
  const port = await listen(dispatcher, 0, '127.0.0.1');
  t.after(async () => {
    await fake.stop();
    await closeServer(dispatcher);
  });
  const tc = await startTestClient(
    { BROKER_TOKEN: randomUUID(), BROKER_SERVER_URL: fake.url, BROKER_HA_MODE_ENABLED: 'true', BROKER_DISPATCHER_BASE_URL: `http://127.0.0.1:${port}` },
    { private: [], public: [] },
  );
  t.after(() => tc.stop());
  // The slot "frees" right after the last refusal: the grant must come one Retry-After later.
  await waitFor('the last refusal', () => posts.length >= REFUSALS, { timeoutMs: 60_000 });
  freedAt = posts[REFUSALS - 1]!;
  await waitFor('two tunnels after the grant', () => fake.open().length === 2, { timeoutMs: 30_000 });
  const gaps = posts.slice(1).map((at, i) => at - posts[i]!);
  // Retry-After 1 s + ≤ 10% jitter; 900 ms of slack for a loaded machine. With the error backoff
  // (max(Retry-After, backoff)) the later gaps would reach 8–30 s.
  for (const [i, gap] of gaps.entries()) {
    assert.ok(gap >= 990, `ask ${i + 2} came ${gap} ms after the previous one: Retry-After not honoured`);
    assert.ok(gap <= 2000, `ask ${i + 2} came ${gap} ms after the previous one: more than Retry-After + 10% (gaps ${gaps.join(', ')})`);
  }
  const takeover = posts[REFUSALS]! - freedAt;
  assert.ok(takeover <= 2000, `took the freed slot ${takeover} ms after it freed`);
  const refusedLogs = tc.logs().filter((e) => e.msg === 'dispatcher allocation failed; retrying');
  assert.equal(refusedLogs.length, REFUSALS);
  assert.ok(refusedLogs.every((e) => e.retryAfterMs === 1000));
});

test('without Retry-After the allocation backs off (jittered, growing)', async (t) => {
  const posts: number[] = [];
  const dispatcher = createServer((req, res) => {
    req.resume();
    posts.push(Date.now());
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end('{"errors":[{"status":"500"}]}');
  });
  const port = await listen(dispatcher, 0, '127.0.0.1');
  t.after(() => closeServer(dispatcher));
  const tc = await startTestClient(
    { BROKER_TOKEN: randomUUID(), BROKER_SERVER_URL: 'http://127.0.0.1:1', BROKER_HA_MODE_ENABLED: 'true', BROKER_DISPATCHER_BASE_URL: `http://127.0.0.1:${port}` },
    { private: [], public: [] },
  );
  t.after(() => tc.stop());
  await waitFor('four failed asks', () => posts.length >= 4, { timeoutMs: 30_000 });
  const delays = tc.logs().filter((e) => e.msg === 'dispatcher allocation failed; retrying').map((e) => e.delayMs as number);
  // backoffDelay(0..2): [250,500], [250,1000], [250,2000]: the ceilings grow; none is a Retry-After.
  assert.ok(delays[0]! >= 250 && delays[0]! <= 500, `first delay ${delays[0]}`);
  assert.ok(delays[1]! >= 250 && delays[1]! <= 1000, `second delay ${delays[1]}`);
  assert.ok(delays[2]! >= 250 && delays[2]! <= 2000, `third delay ${delays[2]}`);
  assert.ok(tc.logs().filter((e) => e.msg === 'dispatcher allocation failed; retrying').every((e) => e.retryAfterMs === undefined));
});
