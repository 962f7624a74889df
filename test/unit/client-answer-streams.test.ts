// Answers streamed over the tunnel (binary frames, credit windows): the client side.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { AnswerStreamError, MAX_FRAME_PAYLOAD, OutgoingAnswerStreams } from '../../src/client/answer-streams.js';
import { copyingFrameSink } from '../../src/client/masked-frames.js';
import { decodeStreamFrame, STREAM_ABORT, STREAM_DATA, STREAM_END, STREAM_WINDOW_BYTES } from '../../src/protocol/index.js';
import { waitFor } from '../support/wait.js';

function recorder() {
  const frames: ReturnType<typeof decodeStreamFrame>[] = [];
  const streams = new OutgoingAnswerStreams(copyingFrameSink((frame, cb) => {
    frames.push(decodeStreamFrame(frame));
    cb();
  }));
  const payloadBytes = () => frames.filter((f) => f.type === STREAM_DATA).reduce((n, f) => n + f.payload.length, 0);
  return { frames, streams, payloadBytes };
}

const HEAD = Buffer.from([4, 0, 0, 0, 0x7b, 0x7d, 0x20, 0x20]);

test('sends the head and the body in data frames (origin chunks gathered, none over MAX_FRAME_PAYLOAD), then end; resolves with the body size on a 200 verdict', async () => {
  const { frames, streams } = recorder();
  const chunks = [...Array.from({ length: 50 }, (_, i) => Buffer.alloc(1000, i)), Buffer.alloc(100 * 1024, 1), Buffer.alloc(10, 2), Buffer.alloc(600 * 1024, 3)];
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const body = Readable.from(chunks);
  const sent = streams.send('s1', HEAD, body, 10_000);
  await waitFor('the end frame', () => frames.some((f) => f.type === STREAM_END));
  assert.equal(frames.at(-1)!.type, STREAM_END);
  const data = frames.slice(0, -1);
  assert.ok(data.every((f) => f.type === STREAM_DATA && f.payload.length > 0 && f.payload.length <= MAX_FRAME_PAYLOAD), data.map((f) => f.payload.length).join());
  // Full frames but for the last: small chunks are gathered, large ones split.
  assert.ok(data.length <= Math.ceil((HEAD.length + total) / MAX_FRAME_PAYLOAD) + 1, `${total} bytes in ${data.length} frames`);
  assert.deepEqual(Buffer.concat(data.map((f) => f.payload)), Buffer.concat([HEAD, ...chunks]));
  assert.ok(frames.every((f) => f.streamingID === 's1'));
  streams.onDone(['s1', 200, '']);
  assert.equal(await sent, total);
  assert.equal(streams.size, 0);
});

test('a chunk from a slow origin leaves at the end of the turn, not when a frame is full', async () => {
  const { frames, streams } = recorder();
  const body = new Readable({ read() {} });
  const sent = streams.send('slow', HEAD, body, 10_000);
  body.push(Buffer.from('first'));
  await waitFor('the first bytes sent', () => frames.some((f) => f.payload.includes('first')));
  body.push(Buffer.from('second'));
  await waitFor('the second bytes sent', () => frames.some((f) => f.payload.includes('second')));
  body.push(null);
  await waitFor('the end frame', () => frames.some((f) => f.type === STREAM_END));
  streams.onDone(['slow', 200, '']);
  assert.equal(await sent, 11);
});

test('never sends past its credit: waits with the origin unread, goes on when the server grants more', async () => {
  const { frames, streams, payloadBytes } = recorder();
  let pulled = 0;
  const total = 3 * STREAM_WINDOW_BYTES;
  const body = new Readable({
    highWaterMark: 64 * 1024,
    read() {
      if (pulled >= total) return void this.push(null);
      pulled += 64 * 1024;
      this.push(Buffer.alloc(64 * 1024, 3));
    },
  });
  const sent = streams.send('s2', HEAD, body, 10_000);
  await waitFor('the window used up', () => payloadBytes() + 64 * 1024 > STREAM_WINDOW_BYTES);
  // It stays there: what it sent fits the window and the origin is read no further than its buffers.
  await new Promise((r) => setImmediate(r));
  assert.ok(payloadBytes() <= STREAM_WINDOW_BYTES);
  assert.ok(pulled <= STREAM_WINDOW_BYTES + 4 * 64 * 1024, `pulled ${pulled} bytes from the origin with no credit`);
  streams.onCredit(['s2', 2 * STREAM_WINDOW_BYTES]);
  await waitFor('the second window used', () => payloadBytes() + 64 * 1024 > 2 * STREAM_WINDOW_BYTES);
  assert.ok(payloadBytes() <= 2 * STREAM_WINDOW_BYTES);
  streams.onCredit(['s2', 10 * STREAM_WINDOW_BYTES]);
  await waitFor('the end frame', () => frames.some((f) => f.type === STREAM_END));
  streams.onDone(['s2', 200, '']);
  assert.equal(await sent, total);
});

test('a refusing verdict, a closed tunnel, an origin that breaks off and a timeout each reject with AnswerStreamError', async () => {
  {
    const { streams } = recorder();
    const sent = streams.send('a', HEAD, Readable.from([Buffer.from('x')]), 10_000);
    await new Promise((r) => setImmediate(r));
    streams.onDone(['a', 500, 'Unable to find request matching streaming id.']);
    await assert.rejects(sent, (e: AnswerStreamError) => e.code === 'ANSWER_STREAM_FAILED' && /500.*Unable to find/.test(e.message));
  }
  {
    const { streams } = recorder();
    const sent = streams.send('b', HEAD, Readable.from([Buffer.alloc(2 * STREAM_WINDOW_BYTES)]), 10_000);
    await new Promise((r) => setImmediate(r));
    streams.close(new Error('tunnel closed'));
    await assert.rejects(sent, /tunnel closed/);
    await assert.rejects(streams.send('b2', HEAD, Readable.from([]), 10_000), (e: AnswerStreamError) => e.bodyStarted === false);
  }
  {
    const { frames, streams } = recorder();
    const body = new Readable({ read() {} });
    const sent = streams.send('c', HEAD, body, 10_000);
    body.push(Buffer.from('some'));
    body.destroy(new Error('ECONNRESET from the origin'));
    await assert.rejects(sent, /origin body broke off: .*ECONNRESET/);
    const abort = frames.find((f) => f.type === STREAM_ABORT);
    assert.ok(abort, 'an abort frame tells the server');
    assert.match(abort.payload.toString(), /ECONNRESET/);
  }
  {
    const { streams } = recorder();
    const sent = streams.send('d', HEAD, Readable.from([Buffer.from('x')]), 50);
    await assert.rejects(sent, /longer than 50 ms/);
  }
});

test('credit and verdicts for unknown streams or malformed ones are ignored', async () => {
  const { frames, streams } = recorder();
  streams.onCredit(['nobody', 5]);
  streams.onDone(['nobody', 200, '']);
  const sent = streams.send('e', HEAD, Readable.from([Buffer.from('x')]), 10_000);
  await waitFor('the end frame', () => frames.some((f) => f.type === STREAM_END));
  streams.onCredit(['e', 'lots']);
  streams.onDone(['e', '200']);
  streams.onDone(['e', 201, 'ok']);
  assert.equal(await sent, 1);
});
