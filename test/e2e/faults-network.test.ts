// Issue 6, faults: the network between broker client and broker server drops connections
// (a TCP cutter sits where a corporate proxy or a NAT would). The platform must get the full
// answer (retried if need be) or a clean error: never a hang, never a short body that looks whole.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startOrigin, patternSha256, type Origin } from '../support/origin.js';
import { waitFor } from '../support/wait.js';
import { startBrokerPair, platformRequest, scrape, metricValue, type BrokerPair, type PlatformResult } from '../support/broker-pair.js';

let origin: Origin;
let pair: BrokerPair;
const results: string[] = [];

before(async () => {
  origin = await startOrigin();
  pair = await startBrokerPair({
    originUrl: origin.url,
    cutter: true,
    // Short heartbeats so a cut tunnel is noticed quickly; a bounded wait for answers; a GET
    // whose tunnels were all cut waits (generously, for a loaded machine) for the reconnect.
    serverEnv: { BROKER_SERVER_REQUEST_TIMEOUT_MS: '30000', BROKER_SERVER_ANSWER_GRACE_MS: '5000', BROKER_SERVER_RECONNECT_WAIT_MS: '20000' },
    clientEnv: { SOCKET_PING_INTERVAL: '2000', SOCKET_PONG_TIMEOUT: '2000' },
  });
});

after(async () => {
  const out = await pair?.stop();
  await origin?.close();
  if (results.length) console.log(`faults-network results:\n  ${results.join('\n  ')}`);
  assert.ok(!out?.includes(pair.token), 'the token appears in process output');
});

function cleanError(r: PlatformResult): boolean {
  return [502, 503, 504].includes(r.status) && typeof r.failure === 'string' && r.failure.length > 0;
}

async function retries(): Promise<number> {
  return metricValue(await scrape(`${pair.serverUrl}/metrics`), 'broker_server_relay_retries_total');
}

test('a GET whose tunnels are all cut before the answer starts is answered in full once the client reconnects', async () => {
  await pair.waitTunnels(2);
  const url = `/slow/2000?cut=get-${Date.now()}`;
  const pending = platformRequest(pair.platformUrl(url), { deadlineMs: 90_000 });
  await waitFor('the origin to see the GET', () => origin.seen.some((s) => s.url === url), { timeoutMs: 30_000 });
  assert.ok(pair.cutter!.cutAll() >= 1, 'connections were cut');
  const r = await pending;
  assert.equal(r.hung, false, 'the request hung');
  assert.equal(r.status, 200, `${r.status} ${r.failure ?? ''} ${r.body.toString().slice(0, 200)}`);
  assert.ok(r.complete, `a 200 whose body broke off: ${r.aborted}`);
  assert.deepEqual(JSON.parse(r.body.toString()), { slow: true });
  results.push(`GET, every tunnel cut before answer: ${r.status} after the reconnect (origin saw it ${origin.seen.filter((s) => s.url === url).length}×)`);
  await pair.waitTunnels(2);
});

test('a GET whose tunnel alone is cut before the answer starts is retried on the other tunnel and answered in full', async () => {
  await pair.waitTunnels(2);
  const before = new Map([...pair.cutter!.open].map((c) => [c, c.bytesDown]));
  const retriesBefore = await retries();
  const url = `/slow/2000?cut=one-${Date.now()}`;
  const pending = platformRequest(pair.platformUrl(url), { deadlineMs: 90_000 });
  await waitFor('the origin to see the GET', () => origin.seen.some((s) => s.url === url), { timeoutMs: 30_000 });
  // The tunnel that carried the request event is the one whose server→client bytes grew most.
  const carrier = [...before].filter(([c]) => pair.cutter!.open.has(c)).sort((a, b) => b[0].bytesDown - b[1] - (a[0].bytesDown - a[1]))[0]![0];
  pair.cutter!.cutOne(carrier);
  const r = await pending;
  assert.equal(r.hung, false, 'the request hung');
  assert.equal(r.status, 200, `${r.status} ${r.failure ?? ''} ${r.body.toString().slice(0, 200)}`);
  assert.ok(r.complete);
  assert.deepEqual(JSON.parse(r.body.toString()), { slow: true });
  const retried = (await retries()) - retriesBefore;
  assert.equal(retried, 1, 'the GET was retried once on the other tunnel');
  results.push(`GET, its tunnel alone cut before answer: 200 after ${retried} retry (origin saw it ${origin.seen.filter((s) => s.url === url).length}×)`);
  await pair.waitTunnels(2);
});

test('a POST whose tunnels are cut before the answer starts is not sent twice and ends cleanly', async () => {
  await pair.waitTunnels(2);
  const url = `/slow/2000?cut=post-${Date.now()}`;
  const pending = platformRequest(pair.platformUrl(url), { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' }, deadlineMs: 90_000 });
  await waitFor('the origin to see the POST', () => origin.seen.some((s) => s.url === url), { timeoutMs: 30_000 });
  pair.cutter!.cutAll();
  const r = await pending;
  assert.equal(r.hung, false, 'the request hung');
  if (r.status === 200) assert.ok(r.complete, `a 200 whose body broke off: ${r.aborted}`);
  else assert.ok(cleanError(r), `not a clean error: ${r.status} ${r.failure}`);
  // Give a duplicate time to show up, then count.
  await pair.waitTunnels(2);
  assert.equal(origin.seen.filter((s) => s.url === url).length, 1, 'the POST reached the origin more than once');
  results.push(`POST cut before answer: ${r.status} ${r.failure ?? ''}`);
});

test('a 50 MiB answer cut mid-stream reaches the platform whole (right sha256) or visibly aborted', async () => {
  await pair.waitTunnels(2);
  const size = 50 * 1024 * 1024;
  const cut = pair.cutter!.cutAfter(10 * 1024 * 1024, 'up');
  const r = await platformRequest(pair.platformUrl(`/bytes/${size}`), { keepBody: false, deadlineMs: 120_000 });
  const conn = await Promise.race([cut, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 1000))]);
  assert.ok(conn, 'the upload connection was cut');
  assert.equal(r.hung, false, 'the request hung');
  if (r.complete) {
    assert.equal(r.status, 200);
    assert.equal(r.bytes, size, 'a body that ended without error is short');
    assert.equal(r.sha256, patternSha256(size), 'a body that ended without error has the wrong sha256');
  } else {
    assert.ok(r.aborted || cleanError(r), `neither aborted nor a clean error: ${r.status}`);
    assert.ok(r.bytes < size || r.sha256 !== patternSha256(size), 'a whole body was reported as aborted');
  }
  results.push(`50 MiB cut after 10 MiB upstream: status ${r.status}, ${r.complete ? 'complete' : `aborted (${r.aborted ?? r.failure}) after ${r.bytes} bytes`}`);
  await pair.waitTunnels(2);
});

test('mixed GET/POST load while every tunnel and upload is cut every 2 s: no hang, no short body, no duplicate POST', async () => {
  await pair.waitTunnels(2);
  const retriesBefore = await retries();
  const bytesSize = 200_000;
  const bytesSha = patternSha256(bytesSize);
  const stats = { sent: 0, ok: 0, failed: 0, hung: 0, aborted: 0 };
  const bad: string[] = [];
  const reasons = new Map<string, number>();
  const inflight = new Set<Promise<void>>();
  const runFor = 20_000;
  const started = Date.now();
  let seq = 0;
  const one = async (i: number) => {
    const kind = i % 3;
    const path = kind === 0 ? `/echo/load/${i}` : kind === 1 ? `/echo/post/${i}` : `/bytes/${bytesSize}?i=${i}`;
    const r = await platformRequest(pair.platformUrl(path), kind === 1 ? { method: 'POST', body: JSON.stringify({ i }), headers: { 'content-type': 'application/json' }, deadlineMs: 90_000 } : { deadlineMs: 90_000 });
    if (r.hung) return void stats.hung++;
    if (r.status === 200 && r.complete) {
      const good = kind === 2 ? r.sha256 === bytesSha : (JSON.parse(r.body.toString()) as { url: string }).url === path;
      if (good) stats.ok++;
      else bad.push(`${path}: a complete 200 with the wrong body (${r.bytes} bytes)`);
      return;
    }
    stats.failed++;
    const why = `${r.status} ${r.failure ?? ''} ${r.aborted ? 'aborted' : ''}`.trim();
    reasons.set(why, (reasons.get(why) ?? 0) + 1);
    if (!r.complete && r.status === 200) stats.aborted++;
    else if (!cleanError(r)) bad.push(`${path}: unclean failure ${r.status} ${r.failure ?? ''} ${r.aborted ?? ''}`);
  };
  const cutter = setInterval(() => pair.cutter!.cutAll(), 2000);
  try {
    while (Date.now() - started < runFor) {
      // ~20 requests per second, at most 16 in flight.
      if (inflight.size < 16) {
        stats.sent++;
        const p = one(seq++).finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    clearInterval(cutter);
  }
  await Promise.all([...inflight]);
  const retried = (await retries()) - retriesBefore;
  const posts = new Map<string, number>();
  for (const s of origin.seen) if (s.method === 'POST' && s.url.startsWith('/echo/post/')) posts.set(s.url, (posts.get(s.url) ?? 0) + 1);
  const dupes = [...posts].filter(([, n]) => n > 1);
  results.push(`mixed load with cuts every 2 s: sent ${stats.sent}, ok ${stats.ok}, failed ${stats.failed} (aborted bodies ${stats.aborted}), retried ${retried}, hung ${stats.hung}, cuts ${pair.cutter!.cut}; failures: ${[...reasons].map(([k, v]) => `${v}× ${k}`).join(', ')}`);
  assert.equal(stats.hung, 0, 'requests hung');
  assert.deepEqual(bad, [], 'bad answers');
  assert.deepEqual(dupes, [], 'POSTs reached the origin twice');
  assert.ok(stats.ok > 0, 'nothing succeeded');
  await pair.waitTunnels(2);
  // The system is whole again: a plain GET works.
  const after = await platformRequest(pair.platformUrl('/echo/after'), { deadlineMs: 30_000 });
  assert.equal(after.status, 200);
});
