import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { encodeResponseHead, readResponseHead, ProtocolError } from '../../src/protocol/index.js';

test('response head: 4-byte little-endian length, JSON, then the body untouched', async () => {
  const headBytes = encodeResponseHead({ status: 200, headers: { 'content-type': 'application/json' } });
  const json = '{"status":200,"headers":{"content-type":"application/json"}}';
  assert.equal(headBytes.readUInt32LE(0), Buffer.byteLength(json));
  assert.equal(headBytes.subarray(4).toString(), json);
  // Delivered one byte at a time, the reader must still find the head and leave the body intact.
  const all = Buffer.concat([headBytes, Buffer.from('hello body')]);
  const stream = Readable.from((function* () {
    for (const b of all) yield Buffer.from([b]);
  })(), { objectMode: false });
  const head = await readResponseHead(stream);
  assert.equal(head.status, 200);
  assert.equal(await text(stream), 'hello body');
});

test('response head: truncated prefix, truncated JSON, garbage JSON and oversized heads are typed errors', async () => {
  const cases: Array<[Buffer, string]> = [
    [Buffer.from([1, 0]), 'RESPONSE_HEAD_TRUNCATED'],
    [Buffer.concat([Buffer.from([50, 0, 0, 0]), Buffer.from('{"status"')]), 'RESPONSE_HEAD_TRUNCATED'],
    [Buffer.concat([Buffer.from([3, 0, 0, 0]), Buffer.from('{{{')]), 'RESPONSE_HEAD_INVALID'],
    [Buffer.concat([Buffer.from([2, 0, 0, 0]), Buffer.from('[]')]), 'RESPONSE_HEAD_INVALID'],
    [Buffer.concat([Buffer.from([14, 0, 0, 0]), Buffer.from('{"status":"x"}')]), 'RESPONSE_HEAD_INVALID'],
    [Buffer.from([255, 255, 255, 127]), 'RESPONSE_HEAD_TOO_LARGE'],
  ];
  for (const [bytes, code] of cases) {
    await assert.rejects(readResponseHead(Readable.from([bytes], { objectMode: false })), (e: unknown) => e instanceof ProtocolError && e.code === code, code);
  }
});

test('response head: a stream that errors or is destroyed mid-head rejects instead of hanging', async () => {
  const s = new PassThrough();
  const pending = readResponseHead(s);
  s.write(Buffer.from([9, 0]));
  s.destroy(new Error('socket hang up'));
  await assert.rejects(pending, (e: unknown) => e instanceof ProtocolError && e.code === 'RESPONSE_HEAD_TRUNCATED');
});
