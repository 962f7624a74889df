// Hedging (issue 14): when a tunnel misses its probe, every idempotent request on it that has sent
// nothing to the platform yet goes again on a responsive connection; the first answer wins, the
// hung client's late answer is refused cleanly. POSTs are never sent twice. A slow but responsive
// client is never taken for hung. Fake tunnel clients stand in for hung ones (answerPings = false).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { encodeResponseHead, encodeTunnelAnswer } from '../../src/protocol/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { FakeTunnelClient, postResponseData, type ScriptedRequest } from '../support/fake-tunnel-client.js';
import { connectFakeClients, startInProcessServer, type InProcessServer } from '../support/in-process-server.js';
import { waitFor } from '../support/wait.js';
import { platform } from '../support/platform-request.js';

const T = 'c9460892-5397-48f1-8697-488769ae3797';
/** Short probes so a hang is found within ~300 ms here. */
const PROBES = { BROKER_SERVER_PROBE_DELAY_MS: '100', BROKER_SERVER_PROBE_TIMEOUT_MS: '150' };
const OURS = { capabilities: ['post-streams', 'ha-broker/1'] };

const servers: InProcessServer[] = [];
const clients: FakeTunnelClient[] = [];
after(async () => {
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.stop()));
});

/** Log lines of the server, to check that nothing is logged at error level. */
function capture(): { lines: Array<Record<string, unknown>>; stream: Writable } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, stream };
}

async function setup(env: Record<string, string>, clientCount: number, options: ConstructorParameters<typeof FakeTunnelClient>[2] = {}) {
  const log = capture();
  const s = await startInProcessServer({ ...PROBES, ...env }, undefined, createLogger({ level: 'debug', destination: log.stream }));
  servers.push(s);
  const fakes = await connectFakeClients(s, T, clientCount, options, clients);
  return { s, fakes, log };
}

function streamingIdOf(r: ScriptedRequest): string {
  return (r.args[0] as { streamingID: string }).streamingID;
}

function answerFrame(streamingID: string, status: number, body: string): Buffer {
  return encodeTunnelAnswer(streamingID, Buffer.concat([encodeResponseHead({ status, headers: { 'content-length': String(Buffer.byteLength(body)) } }), Buffer.from(body)]));
}

async function metric(s: InProcessServer, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

/** The first client that received a request. */
function receiverOf(fakes: FakeTunnelClient[]): Promise<FakeTunnelClient> {
  return waitFor('a client received the request', () => fakes.find((f) => f.requests.length > 0));
}

for (const answerBy of ['post', 'tunnel'] as const) {
  test(`a GET on a tunnel that misses its probe goes again on another client; the first answer wins, the hung client's late ${answerBy === 'post' ? 'POST /response-data' : 'tunnel answer'} is refused cleanly`, async () => {
    const { s, fakes, log } = await setup({}, 2, OURS);
    // Neither answers probes: the one holding the request is the hung one (the other is never probed while idle).
    for (const f of fakes) f.answerPings = false;
    const started = Date.now();
    const waiting = platform(`${s.url}/broker/${T}/repos/1`);
    const hung = await receiverOf(fakes);
    const other = fakes.find((f) => f !== hung)!;
    const again = await other.nextRequest(0);
    const hedgedAfter = Date.now() - started;
    assert.equal((again.args[0] as { url: string }).url, '/repos/1');
    assert.notEqual(streamingIdOf(again), streamingIdOf(hung.requests[0]!), 'the hedge is a new attempt');
    other.ws.send(answerFrame(streamingIdOf(again), 200, 'from the responsive client'));
    const got = await waiting;
    assert.equal(got.status, 200);
    assert.equal(got.body, 'from the responsive client');
    assert.equal(got.headers['x-broker-connection'], `${other.options.clientId}:primary`);
    assert.ok(hedgedAfter < 2000, `hedged after ${hedgedAfter} ms`);
    assert.equal(await metric(s, 'broker_server_relay_hedges_total', 'target="tunnel"'), 1);
    assert.ok((await metric(s, 'broker_server_tunnel_probe_misses_total')) >= 1);
    // The hung client wakes up and answers: refused (POST) or dropped (tunnel), nothing else happens.
    const lateId = streamingIdOf(hung.requests[0]!);
    if (answerBy === 'post') {
      const late = await postResponseData(s.url, T, lateId, [encodeResponseHead({ status: 200 }), Buffer.from('late')]);
      assert.deepEqual(late, { status: 500, body: JSON.stringify({ message: 'Unable to find request matching streaming id.' }) });
    } else {
      hung.ws.send(answerFrame(lateId, 200, 'late'));
      hung.ping(4242);
      await waitFor('pong after the late answer', () => hung.messages.some((m) => m.kind === 'pong' && m.timestamp === '4242'));
      await waitFor('the late answer logged as dropped', () => log.lines.find((l) => String(l.msg).includes('no longer waiting here')));
    }
    assert.equal(await metric(s, 'broker_server_bad_frames_total'), 0);
    assert.equal(await metric(s, 'broker_server_relays_in_flight'), 0, 'no relay left behind');
    for (const c of s.server.pool.members(T)) assert.equal(c.inFlight, 0, `${c.id} still counts a relay`);
    assert.deepEqual(log.lines.filter((l) => l.level === 'error' || l.level === 'fatal'), []);
    assert.ok(log.lines.some((l) => l.msg === 'tunnel missed its probe; sending the idempotent request again elsewhere (hedge)'));
  });
}

test('a POST on a tunnel that misses its probe is never sent twice: it waits for its client', async () => {
  const { s, fakes } = await setup({}, 2, OURS);
  for (const f of fakes) f.answerPings = false;
  const waiting = platform(`${s.url}/broker/${T}/issues`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"id":"once"}' });
  const hung = await receiverOf(fakes);
  const other = fakes.find((f) => f !== hung)!;
  // Long enough for several probes to go unanswered.
  await waitFor('the tunnel taken for hung', () => s.server.pool.members(T).find((c) => c.identity?.clientId === hung.options.clientId && c.unresponsive()), { timeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(other.requests.length, 0, 'the POST went to a second client');
  hung.ws.send(answerFrame(streamingIdOf(hung.requests[0]!), 201, 'created once'));
  const got = await waiting;
  assert.equal(got.status, 201);
  assert.equal(got.body, 'created once');
  assert.equal(await metric(s, 'broker_server_relay_hedges_total', 'target="tunnel"'), 0);
});

test('a slow but responsive client (it answers probes) is never taken for hung: no hedge', async () => {
  const { s, fakes } = await setup({}, 2, OURS);
  const waiting = platform(`${s.url}/broker/${T}/slow`);
  const holder = await receiverOf(fakes);
  const other = fakes.find((f) => f !== holder)!;
  // Many probe periods of silence from the client, each probe answered.
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(other.requests.length, 0, 'a responsive client was hedged');
  assert.equal(await metric(s, 'broker_server_tunnel_probe_misses_total'), 0, 'a responsive client was taken for hung');
  holder.ws.send(answerFrame(streamingIdOf(holder.requests[0]!), 200, 'slow but fine'));
  assert.equal((await waiting).body, 'slow but fine');
  assert.equal(await metric(s, 'broker_server_relay_hedges_total', 'target="tunnel"'), 0);
});

test('with nowhere else to go, a GET on a hung tunnel keeps waiting and takes the late answer', async () => {
  const { s, fakes } = await setup({}, 1, OURS);
  const [only] = fakes as [FakeTunnelClient];
  only.answerPings = false;
  const waiting = platform(`${s.url}/broker/${T}/alone`);
  const r = await only.nextRequest(0);
  await waitFor('the tunnel taken for hung', () => s.server.pool.members(T).find((c) => c.unresponsive()), { timeoutMs: 5000 });
  only.ws.send(answerFrame(streamingIdOf(r), 200, 'woke up'));
  assert.equal((await waiting).body, 'woke up');
  assert.equal(only.requests.length, 1);
  assert.equal(await metric(s, 'broker_server_relay_hedges_total', 'target="tunnel"'), 0);
});

test('probe variables: defaults 300/600 ms, bad values stop the start', async () => {
  const { loadServerConfig } = await import('../../src/config/server.js');
  const config = await loadServerConfig({ PORT: '0' });
  assert.equal(config.probeDelayMs, 300);
  assert.equal(config.probeTimeoutMs, 600);
  await assert.rejects(loadServerConfig({ PORT: '0', BROKER_SERVER_PROBE_TIMEOUT_MS: 'soon' }), /BROKER_SERVER_PROBE_TIMEOUT_MS/);
  await assert.rejects(loadServerConfig({ PORT: '0', BROKER_SERVER_PROBE_DELAY_MS: '0' }), /BROKER_SERVER_PROBE_DELAY_MS/);
});
