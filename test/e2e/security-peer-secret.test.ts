import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { encodeResponseHead } from '../../src/protocol/index.js';
import { clusterForFile } from '../support/ha-cluster.js';
import { FakeTunnelClient, postResponseData } from '../support/fake-tunnel-client.js';
import { waitFor } from '../support/wait.js';
import { FAILURES } from '../../src/protocol/failures.js';

/**
 * BROKER_INTERNAL_SECRET on the dispatcher and both servers: every peer-to-peer hop (platform
 * requests, tunnels arriving at the wrong server, answer uploads) carries it, so HA routing works
 * as before; a request that merely claims to come from a peer (x-broker-forwarded-by) without it
 * is refused with 401 internal-secret-required, and the dispatcher's internal API refuses too.
 */
const SECRET = 'peer-secret-0123456789abcdef';
const cluster = clusterForFile(
  {
    servers: 2,
    serverEnv: { BROKER_INTERNAL_SECRET: SECRET, BROKER_SERVER_ROUTING_REFRESH_MS: '300' },
    dispatcherEnv: { BROKER_INTERNAL_SECRET: SECRET },
  },
  2,
);

async function send(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  const r = await request(url, { method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body, reset: true, headersTimeout: 30_000, bodyTimeout: 30_000 });
  return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
}

/** Sum of one counter over both servers' /metrics, optionally only series whose labels include `labels`. */
async function counter(name: string, labels = ''): Promise<number> {
  let sum = 0;
  for (const s of cluster.servers) {
    const text = (await send(`http://127.0.0.1:${s.port}/metrics`)).body;
    for (const line of text.split('\n')) {
      if (line.startsWith(`${name}{`) && line.includes(labels)) sum += Number(line.split(' ').at(-1));
    }
  }
  return sum;
}

/** A raw websocket upgrade to `port`; resolves with the status line and headers the server answered. */
function rawUpgrade(port: number, path: string, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      const lines = [`GET ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='];
      for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
      socket.write(lines.join('\r\n') + '\r\n\r\n');
    });
    let got = '';
    socket.setTimeout(20_000, () => socket.destroy(new Error('no answer to the upgrade')));
    socket.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) {
        socket.destroy();
        resolve(got.split('\r\n\r\n')[0]!);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(got));
  });
}

test('with the internal secret set, platform requests cross between peer servers', async () => {
  const before = await counter('broker_server_peer_forwards_total', 'outcome="answered"');
  const { ok, failures } = await cluster.burst(200, 8);
  assert.equal(ok, 200, JSON.stringify(failures.slice(0, 5)));
  const peer = (await counter('broker_server_peer_forwards_total', 'outcome="answered"')) - before;
  console.log(`peer-forwarded platform requests: ${peer} of 200`);
  // Both servers hold a client's tunnels and share the work: some requests crossed to the peer.
  assert.ok(peer > 0, 'no platform request was forwarded to a peer');
  const refused = cluster.group.all().filter((p) => p.output().includes('without the valid internal secret'));
  assert.deepEqual(refused.map((p) => p.name), [], 'a genuine peer hop was refused');
});

test('with the internal secret set, a tunnel landing on the wrong server and its answer upload are carried to the right one', async () => {
  // Its own token, so the cluster's clients are not disturbed; the fake client answers by hand.
  const token = randomUUID();
  const [s0, s1] = [cluster.servers[0]!, cluster.servers[1]!];
  const url0 = `http://127.0.0.1:${s0.port}`;
  const url1 = `http://127.0.0.1:${s1.port}`;
  const tunnel = new FakeTunnelClient(url0, token, { clientId: 'fake-for-1', query: `server_id=${s1.id}` });
  try {
    await tunnel.opened;
    await waitFor('the tunnel made through server 0 to be identified on server 1', async () => (await send(`${url1}/connection-status/${token}`)).status === 200, { timeoutMs: 20_000 });
    assert.equal((await send(`${url0}/connection-status/${token}`)).status, 404, 'the tunnel was served where it landed');
    const answer = send(`${url1}/broker/${token}/through-0`);
    const relayed = await tunnel.nextRequest(0);
    const streamingID = (relayed.args[0] as { streamingID: string }).streamingID;
    // Uploaded to server 0: it waits on server 1, so 0 forwards it (with the secret).
    const upload = await postResponseData(url0, token, streamingID, [encodeResponseHead({ status: 200, headers: { 'content-type': 'text/plain' } }), Buffer.from('answered via 0')]);
    assert.deepEqual(upload, { status: 200, body: '{}' });
    const got = await answer;
    assert.equal(got.status, 200, got.body);
    assert.equal(got.body, 'answered via 0');
    const forwarded = (await send(`${url0}/metrics`)).body;
    assert.match(forwarded, /broker_server_tunnel_forwards_total\{kind="websocket",outcome="forwarded"\} [1-9]/);
    assert.match(forwarded, /broker_server_tunnel_forwards_total\{kind="response-data",outcome="forwarded"\} [1-9]/);
  } finally {
    tunnel.close();
  }
});

test('a request that claims to be forwarded by a peer without the right secret gets 401 internal-secret-required', async () => {
  const s0 = cluster.servers[0]!;
  const base = `http://127.0.0.1:${s0.port}`;
  const servedBefore = [...cluster.origin.served.values()].reduce((a, b) => a + b, 0);
  const forged: Array<{ what: string; method: string; path: string; headers: Record<string, string>; body?: string }> = [
    { what: 'platform request, no secret', method: 'GET', path: `/broker/${cluster.token}/forged/1`, headers: { 'x-broker-forwarded-by': '1' } },
    { what: 'platform request, wrong secret', method: 'GET', path: `/broker/${cluster.token}/forged/2`, headers: { 'x-broker-forwarded-by': '1', 'x-broker-internal-secret': 'wrong-secret-value-42' } },
    { what: 'platform request, secret with a different length', method: 'POST', path: `/broker/${cluster.token}/forged/3`, headers: { 'x-broker-forwarded-by': '1', 'x-broker-internal-secret': SECRET + 'x' }, body: '{}' },
    { what: 'polling tunnel', method: 'GET', path: `/primus/${cluster.token}/?EIO=4&transport=polling`, headers: { 'x-broker-forwarded-by': '1' } },
    { what: 'answer upload', method: 'POST', path: `/response-data/${cluster.token}/00000000-0000-4000-8000-000000000000.0`, headers: { 'x-broker-forwarded-by': '1' }, body: 'x' },
    { what: 'service command', method: 'GET', path: `/service/${cluster.token}/status`, headers: { 'x-broker-forwarded-by': '1' } },
  ];
  for (const f of forged) {
    const r = await send(`${base}${f.path}`, { method: f.method, headers: f.headers, body: f.body });
    assert.equal(r.status, 401, `${f.what}: ${r.status} ${r.body}`);
    assert.equal(r.headers['x-broker-failure'], FAILURES.INTERNAL_SECRET_REQUIRED.reason, f.what);
  }
  const upgrade = await rawUpgrade(s0.port, `/primus/${cluster.token}/?EIO=4&transport=websocket`, { 'x-broker-forwarded-by': '1', 'x-broker-internal-secret': 'nope-nope-nope' });
  assert.match(upgrade, /^HTTP\/1\.1 401 /, upgrade);
  assert.match(upgrade, new RegExp(`x-broker-failure: ${FAILURES.INTERNAL_SECRET_REQUIRED.reason}\r\n`, 'i'));

  // The genuine secret is accepted (the request is then served by this server's own tunnels only).
  const genuine = await send(`${base}/broker/${cluster.token}/genuine`, { headers: { 'x-broker-forwarded-by': '1', 'x-broker-internal-secret': SECRET } });
  assert.notEqual(genuine.status, 401, genuine.body);
  // Without the forwarded-by claim the secret is irrelevant: an ordinary platform request.
  const ordinary = await send(`${base}/broker/${cluster.token}/ordinary`);
  assert.equal(ordinary.status, 200, ordinary.body);

  const servedAfter = [...cluster.origin.served.values()].reduce((a, b) => a + b, 0);
  assert.ok(servedAfter - servedBefore <= 2, `a forged request reached the origin (${servedAfter - servedBefore} served)`);
  const log = s0.proc.output();
  assert.ok(log.includes('without the valid internal secret'), 'the refusal was not logged');
  assert.ok(!log.includes('wrong-secret-value-42') && !log.includes('nope-nope-nope'), 'a presented secret value was logged');
});

test('the dispatcher internal API refuses calls without the secret (401)', async () => {
  const without = await send(`${cluster.dispatcherUrl}/internal/brokerservers`);
  assert.equal(without.status, 401, without.body);
  const wrong = await send(`${cluster.dispatcherUrl}/internal/brokerservers`, { headers: { 'x-broker-internal-secret': 'wrong-secret-value-42' } });
  assert.equal(wrong.status, 401, wrong.body);
  const right = await send(`${cluster.dispatcherUrl}/internal/brokerservers`, { headers: { 'x-broker-internal-secret': SECRET } });
  assert.equal(right.status, 200, right.body);
  assert.ok(!cluster.group.allOutput().includes(SECRET), 'the internal secret appears in process output');
});
