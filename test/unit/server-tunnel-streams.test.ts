// Answers streamed over the tunnel by our client (binary frames, credit windows): the server side.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { encodeResponseHead, STREAM_ABORT, STREAM_DATA, STREAM_DONE_EVENT, STREAM_END, STREAM_WINDOW_BYTES, streamFramePrefix, TUNNEL_STREAMS_CAPABILITY, decodeStreamFrame } from '../../src/protocol/index.js';
import { FakeTunnelClient } from '../support/fake-tunnel-client.js';
import { SERVER_STREAM_WINDOW_BYTES, TunnelAnswerStream } from '../../src/server/tunnel-answer-streams.js';
import { connectFakeClients, startInProcessServer, type InProcessServer } from '../support/in-process-server.js';
import { waitFor } from '../support/wait.js';
import { platform } from '../support/platform-request.js';
import { FAILURES } from '../../src/protocol/failures.js';

const T = 'c3a2b1d4-5397-48f1-8697-488769ae3797';
const OURS = { capabilities: ['post-streams', 'ha-broker/1'] };
const servers: InProcessServer[] = [];
const clients: FakeTunnelClient[] = [];
after(async () => {
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.stop()));
});

async function setup(clientCount = 1) {
  const s = await startInProcessServer({});
  servers.push(s);
  const fakes = await connectFakeClients(s, T, clientCount, OURS, clients);
  return { s, fakes };
}

const idOf = (r: { args: unknown[] }) => (r.args[0] as { streamingID: string }).streamingID;
const data = (id: string, payload: Buffer) => Buffer.concat([streamFramePrefix(STREAM_DATA, id), payload]);
const head = (status: number, headers: Record<string, string> = {}) => encodeResponseHead({ status, headers });

/** The stream events (credit, done) the server sent this client for `id`. */
function streamEvents(c: FakeTunnelClient, name: string, id: string): unknown[][] {
  return c.messages.filter((m) => m.kind === 'event' && m.name === name && m.args[0] === id).map((m) => (m as { args: unknown[] }).args);
}

/** A platform request whose body the test reads only when it wants to. */
function slowPlatform(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => httpRequest(url, (res) => { res.pause(); resolve(res); }).on('error', reject).end());
}

test('the server offers streams; a streamed answer reaches the platform whole and the client hears 200', async () => {
  const { s, fakes } = await setup();
  const [c] = fakes as [FakeTunnelClient];
  assert.ok((c.messages[0] as unknown as { args: [{ capabilities: string[] }] }).args[0].capabilities.includes(TUNNEL_STREAMS_CAPABILITY));
  const answer = platform(`${s.url}/broker/${T}/big`);
  const id = idOf(await c.nextRequest(0));
  c.ws.send(data(id, Buffer.concat([head(200, { 'x-origin': 'yes' }), Buffer.from('part one, ')])));
  c.ws.send(data(id, Buffer.from('part two')));
  c.ws.send(streamFramePrefix(STREAM_END, id));
  const got = await answer;
  assert.equal(got.status, 200);
  assert.equal(got.body, 'part one, part two');
  assert.equal(got.headers['x-origin'], 'yes');
  const [done] = await waitFor('the verdict', () => streamEvents(c, STREAM_DONE_EVENT, id).length ? streamEvents(c, STREAM_DONE_EVENT, id) : undefined);
  assert.deepEqual(done, [id, 200, '']);
});

test('credit follows what the reader takes: none while it takes nothing, a window ahead of it after', async () => {
  const grants: number[] = [];
  // A server window as large as the starting one: the grant cadence alone.
  const stream = new TunnelAnswerStream((limit) => grants.push(limit), () => undefined, STREAM_WINDOW_BYTES);
  const piece = Buffer.alloc(64 * 1024, 0x61);
  for (let i = 0; i < STREAM_WINDOW_BYTES / piece.length; i++) assert.equal(stream.receive(piece), true);
  assert.equal(stream.receive(Buffer.alloc(1)), false, 'one byte past the window is refused');
  const fresh = new TunnelAnswerStream((limit) => grants.push(limit), () => undefined, STREAM_WINDOW_BYTES);
  for (let i = 0; i < STREAM_WINDOW_BYTES / piece.length; i++) fresh.receive(piece);
  assert.deepEqual(grants, [], 'nothing taken, nothing granted');
  fresh.read(100 * 1024);
  assert.deepEqual(grants, [], 'less than a quarter window taken: no event yet');
  fresh.read(200 * 1024);
  assert.deepEqual(grants, [300 * 1024 + STREAM_WINDOW_BYTES]);
  assert.equal(fresh.receive(Buffer.alloc(300 * 1024)), true, 'the new credit can be used');
  assert.equal(fresh.receive(Buffer.alloc(1)), false);
  // A reader that empties the buffer always grants: the client is never left waiting for < 64 KiB.
  fresh.read();
  assert.equal(grants.at(-1), STREAM_WINDOW_BYTES + 300 * 1024 + STREAM_WINDOW_BYTES);
  assert.equal(fresh.readableLength, 0);
});

test("the server's window: the first read grants SERVER_STREAM_WINDOW_BYTES past what was read, and no further while the reader stops", () => {
  const grants: number[] = [];
  const stream = new TunnelAnswerStream((limit) => grants.push(limit), () => undefined);
  const piece = Buffer.alloc(64 * 1024, 0x61);
  for (let i = 0; i < STREAM_WINDOW_BYTES / piece.length; i++) assert.equal(stream.receive(piece), true);
  assert.equal(stream.receive(Buffer.alloc(1)), false, 'the starting window holds until the reader takes something');
  stream.read(piece.length);
  assert.deepEqual(grants, [piece.length + SERVER_STREAM_WINDOW_BYTES]);
  let sent = STREAM_WINDOW_BYTES;
  while (stream.receive(piece)) sent += piece.length;
  assert.equal(sent, piece.length + SERVER_STREAM_WINDOW_BYTES, 'the client may fill the whole window, not more');
  assert.ok(stream.readableLength <= SERVER_STREAM_WINDOW_BYTES, 'at most one server window waits here');
});

test('a client that sends past its credit fails the answer (400 to the client, the platform cut) and counts a bad frame', async () => {
  const { s, fakes } = await setup();
  const [c] = fakes as [FakeTunnelClient];
  const waiting = slowPlatform(`${s.url}/broker/${T}/big`);
  const id = idOf(await c.nextRequest(0));
  c.ws.send(data(id, head(200)));
  // More than any credit: the starting window, and the server's window granted once the head was read.
  c.ws.send(data(id, Buffer.alloc(SERVER_STREAM_WINDOW_BYTES + STREAM_WINDOW_BYTES, 0x62)));
  const [done] = await waitFor('the verdict', () => (streamEvents(c, STREAM_DONE_EVENT, id).length ? streamEvents(c, STREAM_DONE_EVENT, id) : undefined));
  assert.equal(done![1], 400);
  assert.match(String(done![2]), /past its credit/);
  // Nothing reached the platform yet: the attempt failed before the head went out, so the platform hears a failure, not a 200.
  const res = await waiting;
  res.resume();
  assert.notEqual(res.statusCode, 200);
  assert.ok(Object.values(FAILURES).some((f) => f.reason === res.headers['x-broker-failure']));
  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  assert.match(metrics, /broker_server_bad_frames_total [1-9]/);
});

test('an abort frame before any body byte fails the attempt: the platform gets 502, never a truncated 200', async () => {
  const { s, fakes } = await setup();
  const [c] = fakes as [FakeTunnelClient];
  const answer = platform(`${s.url}/broker/${T}/big`, { method: 'POST', body: 'x' });
  const id = idOf(await c.nextRequest(0));
  c.ws.send(data(id, head(200)));
  c.ws.send(Buffer.concat([streamFramePrefix(STREAM_ABORT, id), Buffer.from('origin reset')]));
  const got = await answer;
  assert.equal(got.status, 502);
  assert.ok(Object.values(FAILURES).some((f) => f.reason === got.headers['x-broker-failure']));
});

test('the tunnel closing mid-stream cuts the platform answer (no clean end)', async () => {
  const { s, fakes } = await setup();
  const [c] = fakes as [FakeTunnelClient];
  const waiting = slowPlatform(`${s.url}/broker/${T}/big`);
  const id = idOf(await c.nextRequest(0));
  c.ws.send(data(id, head(200, { 'content-length': String(10 * 1024 * 1024) })));
  c.ws.send(data(id, Buffer.alloc(300 * 1024, 0x63)));
  const res = await waiting;
  c.ws.terminate();
  let read = 0;
  const ended = await new Promise<string>((r) => {
    res.on('data', (chunk: Buffer) => (read += chunk.length)).on('error', () => r('error')).on('aborted', () => r('aborted')).on('close', () => r(res.complete ? 'end' : 'cut'));
    res.resume();
  });
  assert.notEqual(ended, 'end');
  assert.ok(read < 10 * 1024 * 1024);
});

test('frames for a request this connection was not sent are refused with the contract message; the real answer still arrives', async () => {
  const { s, fakes } = await setup(2);
  const answer = platform(`${s.url}/broker/${T}/x`);
  const receiver = await waitFor('the request reached a client', () => fakes.find((f) => f.requests.length > 0));
  const other = fakes.find((f) => f !== receiver)!;
  const id = idOf(receiver.requests[0]!);
  other.ws.send(data(id, Buffer.concat([head(200), Buffer.from('forged')])));
  other.ws.send(streamFramePrefix(STREAM_END, id));
  const [refused] = await waitFor('the refusal', () => (streamEvents(other, STREAM_DONE_EVENT, id).length ? streamEvents(other, STREAM_DONE_EVENT, id) : undefined));
  assert.equal(refused![1], 500);
  assert.match(String(refused![2]), /Unable to find request matching streaming id/);
  receiver.ws.send(data(id, Buffer.concat([head(200), Buffer.from('real')])));
  receiver.ws.send(streamFramePrefix(STREAM_END, id));
  const got = await answer;
  assert.equal(got.body, 'real');
});

test('stream frames decode; a frame with no streamingID is refused', () => {
  const f = decodeStreamFrame(data('abc', Buffer.from('xyz')));
  assert.deepEqual({ type: f.type, id: f.streamingID, payload: f.payload.toString() }, { type: STREAM_DATA, id: 'abc', payload: 'xyz' });
  assert.throws(() => decodeStreamFrame(Buffer.from([STREAM_DATA, 0, 0])), /streamingID/);
  assert.throws(() => decodeStreamFrame(Buffer.from([STREAM_DATA, 0, 9, 0x61])), /streamingID/);
  assert.throws(() => streamFramePrefix(STREAM_END, ''), /streamingID/);
});
