// A drain must not cut the tunnels of other servers that pass through the draining one. A client
// reaches its allocated server B through server A (the balancer picked A, which pipes the
// upgrade to B). With a slow POST in flight on that tunnel, A gets SIGTERM: B sees A stopping
// (routing refresh), drains that tunnel and sends its client away once the POST is answered; A
// waits for it before closing. The POST completes 200 and the client connects again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { clusterForFile, logLines } from '../support/ha-cluster.js';
import { waitFor } from '../support/wait.js';

// The origin streams this answer over 5 s: longer than A's drain took before the fix (one
// routing refresh + 500 ms, then the passing tunnels were destroyed), so the cut hit the POST
// mid-answer, where no one can retry it.
const cluster = clusterForFile({ servers: 2, originDelayMs: 5000, allowPost: true }, 0);

test('draining a server does not cut a tunnel of another server passing through it', async () => {
  const [s0, s1] = cluster.servers as [typeof cluster.servers[0], typeof cluster.servers[0]];
  // Only server 0 behind the balancer: the client's tunnel lands there.
  cluster.balancer.setBackends([s0.port]);
  const c = await cluster.startClient(1);
  await cluster.waitReady([c]);
  let allocated = cluster.allocatedServer(c);
  if (allocated === s0.id) {
    // Allocated to the server it reached directly: put only server 1 in front and reconnect
    // (the allocation of a client id is kept), so the tunnel passes through server 1.
    cluster.balancer.setBackends([s1.port]);
    await c.proc.stop(30_000);
    cluster.restartClient(c);
    await cluster.waitReady([c]);
    allocated = cluster.allocatedServer(c);
  }
  const b = cluster.servers.find((s) => s.id === allocated);
  const a = cluster.servers.find((s) => s.id !== allocated)!;
  assert.ok(b, `client allocated to an unknown server ${String(allocated)}`);
  await waitFor('B holds the tunnel', async () => (await cluster.tokenView()).servers.some((s) => s.server_id === b.id && s.tunnels > 0), { timeoutMs: 20_000, intervalMs: 200 });

  // A slow POST straight to B, relayed over the tunnel that passes through A.
  const sent = Date.now();
  const post = request(`http://127.0.0.1:${b.port}/broker/${cluster.token}/c1/stream/slow-post`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'drain-pass-1' }),
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  })
    .then(async (r) => ({ status: r.statusCode, failure: r.headers['x-broker-failure'], text: await r.body.text() }))
    .catch((err: Error) => ({ status: 0, failure: `error ${err.message}`, text: '' }));
  await waitFor('the POST reached the origin', () => (cluster.origin.seenIds.get('drain-pass-1') ?? 0) > 0, { timeoutMs: 10_000, intervalMs: 50 });

  // As Kubernetes does: A leaves the balancer's backends and gets SIGTERM.
  cluster.balancer.setBackends([b.port]);
  const oldA = a.proc;
  const stopped = oldA.stop(60_000);
  const answer = await post;
  assert.equal(answer.text.split('\n').filter(Boolean).length, 10, `POST answer incomplete (${answer.status} ${String(answer.failure ?? '')}) after ${Date.now() - sent} ms: ${answer.text.slice(-200)}`);
  assert.equal(answer.status, 200, `POST answered ${answer.status} ${String(answer.failure ?? '')} ${answer.text.slice(0, 200)} after ${Date.now() - sent} ms`);
  assert.equal(cluster.origin.seenIds.get('drain-pass-1'), 1, 'the POST reached the origin more than once');
  assert.equal(await stopped, 0, `server ${a.id} exit code; output:\n${oldA.output().slice(-2000)}`);
  assert.ok(logLines(b.proc).some((e) => String(e.msg).startsWith('peer server is stopping')), 'B did not drain the tunnel passing through A');
  assert.ok(!logLines(oldA).some((e) => String(e.msg).includes('cutting tunnels of peers')), 'A had to cut a passing tunnel');
  // The client was sent away and connected again, now through a live server.
  await waitFor('the client ready again', () => cluster.isReady(c), { timeoutMs: 30_000, intervalMs: 200 });
  const again = await request(`http://127.0.0.1:${b.port}/broker/${cluster.token}/c1/after`, { headersTimeout: 30_000, bodyTimeout: 30_000 });
  await again.body.text();
  assert.equal(again.statusCode, 200);
});
