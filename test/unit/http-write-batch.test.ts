import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createWriteBatcher } from '../../src/http/write-batch.js';

const nextTurn = () => new Promise<void>((r) => setImmediate(r));

test('write batcher: corks a socket once per event-loop turn and uncorks it after the turn', async () => {
  const calls: string[] = [];
  const socket = { cork: () => calls.push('cork'), uncork: () => calls.push('uncork') };
  const batch = createWriteBatcher();
  batch(socket);
  batch(socket);
  batch(socket);
  batch(undefined);
  assert.deepEqual(calls, ['cork'], 'one cork for three writes in one turn, nothing uncorked yet');
  await nextTurn();
  assert.deepEqual(calls, ['cork', 'uncork']);
  batch(socket);
  await nextTurn();
  assert.deepEqual(calls, ['cork', 'uncork', 'cork', 'uncork'], 'the next turn corks again');
});

async function socketPair(): Promise<{ writer: Socket; received: () => Promise<Buffer>; close(): void }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const writer = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(writer, 'connect');
  const [peer] = await accepted;
  const chunks: Buffer[] = [];
  peer.on('data', (c: Buffer) => chunks.push(c));
  const ended = once(peer, 'close');
  return {
    writer,
    received: async () => {
      await ended;
      return Buffer.concat(chunks);
    },
    close() {
      writer.destroy();
      peer.destroy();
      server.close();
    },
  };
}

test('write batcher: the writes of one turn leave a real socket in one writev, in order', async (t) => {
  const pair = await socketPair();
  t.after(() => pair.close());
  const { writer } = pair;
  let single = 0;
  const batches: number[] = [];
  const w = writer as unknown as { _write: (...a: unknown[]) => unknown; _writev: (chunks: unknown[], cb: unknown) => unknown };
  const write = w._write.bind(writer);
  const writev = w._writev.bind(writer);
  w._write = (...a) => {
    single++;
    return write(...a);
  };
  w._writev = (chunks, cb) => {
    batches.push(chunks.length);
    return writev(chunks, cb);
  };
  const batch = createWriteBatcher();
  for (const part of ['one ', 'two ', 'three']) {
    batch(writer);
    writer.write(part);
  }
  assert.equal(single + batches.length, 0, 'nothing written before the turn ends');
  await nextTurn();
  assert.deepEqual({ single, batches }, { single: 0, batches: [3] });
  writer.end();
  assert.equal((await pair.received()).toString(), 'one two three');
});

test('write batcher: end() in the same turn still sends everything; destroy() leaves nothing to uncork badly', async (t) => {
  const pair = await socketPair();
  t.after(() => pair.close());
  const batch = createWriteBatcher();
  batch(pair.writer);
  pair.writer.write('last words');
  pair.writer.end();
  assert.equal((await pair.received()).toString(), 'last words');

  const other = await socketPair();
  t.after(() => other.close());
  batch(other.writer);
  other.writer.write('dropped');
  other.writer.destroy();
  await nextTurn();
  assert.equal(other.writer.destroyed, true);
});
