import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer, connect, Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Server as EngineServer, type Socket as EngineSocket } from 'engine.io';
import WebSocket from 'ws';
import { createWriteBatcher, socketUnderWebSocket } from '../../src/http/write-batch.js';
import { netSocketOf } from '../../src/server/engine-transport.js';

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

test('engine.io and ws as server and client use them: both expose the net socket under the websocket, and every flush is announced', async (t) => {
  const http = createHttpServer();
  const engine = new EngineServer({ transports: ['websocket'] });
  engine.attach(http);
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  t.after(() => {
    engine.close();
    http.close();
  });
  const session = once(engine, 'connection') as Promise<[EngineSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${(http.address() as AddressInfo).port}/engine.io/?EIO=4&transport=websocket`);
  t.after(() => client.terminate());
  const [socket] = await session;
  const net = netSocketOf(socket);
  assert.ok(net instanceof Socket, 'the websocket transport keeps a net.Socket under ws');
  // Our client's side: the ws client keeps its net socket the same way.
  if (client.readyState !== WebSocket.OPEN) await once(client, 'open');
  assert.ok(socketUnderWebSocket(client) instanceof Socket, 'the ws client keeps a net.Socket');
  let flushes = 0;
  socket.on('flush', () => flushes++);
  const got = new Promise<string>((resolve) => client.on('message', (m) => String(m).startsWith('4') && resolve(String(m))));
  socket.send('hello');
  assert.equal(await got, '4hello');
  assert.ok(flushes >= 1, 'engine.io emitted flush before writing');
});
