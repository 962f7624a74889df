// Masked binary websocket frames built by the client for answer streams: what a server's `ws` reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import * as ws from 'ws';

// ws exports its frame parser; its type package does not declare it.
const Receiver = (ws as unknown as { Receiver: new (o: { isServer: boolean; maxPayload: number }) => Writable }).Receiver;
import { maskedFrameSink } from '../../src/client/masked-frames.js';

/** A server-side `ws` receiver fed the bytes written, collecting the messages it decodes. */
function serverReceiver() {
  const messages: Array<{ data: Buffer; binary: boolean }> = [];
  const errors: Error[] = [];
  const receiver = new Receiver({ isServer: true, maxPayload: 64 * 1024 * 1024 });
  receiver.on('message', (data: Buffer, binary: boolean) => messages.push({ data: Buffer.from(data), binary }));
  receiver.on('error', (err: Error) => errors.push(err));
  return { receiver, messages, errors };
}

test('frames of every length class, filled in odd-sized appends, decode to the bytes appended; each has its own mask', async () => {
  const { receiver, messages, errors } = serverReceiver();
  const written: Buffer[] = [];
  const sink = maskedFrameSink((frame, cb) => {
    written.push(Buffer.from(frame));
    receiver.write(frame);
    cb();
  }, 256 * 1024);
  const expected: Buffer[] = [];
  for (const sizes of [[0], [1], [125], [3, 1, 122], [126], [5, 7, 65_000, 523], [65_536], [1, 2, 3, 100_000, 70_001, 17], [300 * 1024]]) {
    const total = sizes.reduce((a, b) => a + b, 0);
    const frame = sink.open(total);
    const parts = sizes.map((n) => randomBytes(n));
    for (const p of parts) frame.append(p);
    assert.equal(frame.room, 0);
    expected.push(Buffer.concat(parts));
    await new Promise<void>((resolve, reject) => frame.send((err) => (err ? reject(err) : resolve())));
  }
  assert.deepEqual(errors, []);
  assert.equal(messages.length, expected.length);
  messages.forEach((m, i) => {
    assert.ok(m.binary);
    assert.ok(m.data.equals(expected[i]!), `message ${i} (${expected[i]!.length} bytes)`);
  });
  // Masked (bit set), and not with one key for all: the keys of the frames differ.
  const keys = written.map((w) => {
    assert.equal(w[1]! & 0x80, 0x80);
    const len = w[1]! & 0x7f;
    const at = len < 126 ? 2 : len === 126 ? 4 : 10;
    return w.subarray(at, at + 4).toString('hex');
  });
  assert.ok(new Set(keys).size > keys.length / 2, keys.join());
  // A payload is not sent in clear: a frame of zeros does not carry zeros.
  const zeros = sink.open(4096);
  zeros.append(Buffer.alloc(4096));
  await new Promise<void>((resolve) => zeros.send(() => resolve()));
  assert.ok(written.at(-1)!.subarray(-4096).some((b) => b !== 0));
});

test('frames sent in one turn leave in one write, in send order; a frame with a buffer of its own first flushes what the block holds', async () => {
  const { receiver, messages, errors } = serverReceiver();
  const writes: Buffer[] = [];
  const sink = maskedFrameSink((bytes, cb) => {
    writes.push(bytes);
    receiver.write(Buffer.from(bytes));
    setImmediate(cb);
  }, 64 * 1024);
  const frame = (n: number, fill: number) => {
    const f = sink.open(n);
    f.append(Buffer.alloc(n, fill));
    return f;
  };
  frame(1000, 1).send(() => undefined);
  frame(2000, 2).send(() => undefined);
  const filling = frame(10, 3); // open in the block...
  const own = frame(100, 4); // ...so this one gets its own buffer
  own.send(() => undefined);
  filling.send(() => undefined);
  assert.equal(writes.length, 2, 'the block (frames 1, 2) went before the frame with its own buffer');
  frame(70 * 1024, 5).send(() => undefined); // larger than a block
  frame(500, 6).discard(); // a failed stream's frame: its room in the block is used by the next
  const next = frame(600, 7);
  assert.equal((next as unknown as { block?: unknown }).block !== undefined, true, 'the next frame goes into the block again');
  next.send(() => undefined);
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.length, 5, 'the 10-byte frame, flushed before the large one; the large one; the last frame at the end of the turn');
  assert.deepEqual(errors, []);
  assert.deepEqual(messages.map((m) => [m.data.length, m.data[0]]), [[1000, 1], [2000, 2], [100, 4], [10, 3], [70 * 1024, 5], [600, 7]]);
});

test('a block is reused only once its bytes were written and it is no longer filled; a failed write drops it', async () => {
  const pending: Array<{ bytes: Buffer; cb: (err?: Error | null) => void }> = [];
  const sink = maskedFrameSink((bytes, cb) => pending.push({ bytes, cb }), 16 * 1024);
  const fill = () => {
    // Two frames fill a block exactly (8 header bytes each): the second one writes it.
    for (let i = 0; i < 2; i++) {
      const f = sink.open(8 * 1024 - 8);
      f.append(Buffer.alloc(8 * 1024 - 8, i));
      f.send(() => undefined);
    }
  };
  fill();
  fill();
  assert.equal(pending.length, 2);
  assert.notEqual(pending[0]!.bytes.buffer, pending[1]!.bytes.buffer, 'a block in flight is not filled again');
  const first = pending[0]!.bytes.buffer;
  pending.shift()!.cb();
  pending.shift()!.cb(new Error('EPIPE'));
  fill();
  assert.equal(pending.at(-1)!.bytes.buffer, first, 'the written block carries the next frames');
  pending.shift()!.cb();
  fill();
  assert.equal(pending.at(-1)!.bytes.buffer, first, 'the failed block was not taken back');
});
