import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeEnginePacket,
  decodeEnginePayload,
  encodeEnginePacket,
  parseOpenData,
  ejsonParse,
  ejsonStringify,
  decodeTunnelMessage,
  encodeEvent,
  encodeEventWithStreamingId,
  encodeAck,
  encodePing,
  encodePong,
  EmitterChannel,
  ProtocolError,
  hashToken,
  maskToken,
  parseRelayRequest,
} from '../../src/protocol/index.js';
import { Rng, randomBytes } from '../support/fuzz.js';

test('engine.io packets: every type round-trips, payloads split on \\x1e, unknown types are typed errors', () => {
  for (const type of ['open', 'close', 'ping', 'pong', 'message', 'upgrade', 'noop'] as const) {
    assert.deepEqual(decodeEnginePacket(encodeEnginePacket(type, 'x')), { type, data: 'x' });
  }
  assert.deepEqual(decodeEnginePayload('4"a"\x1e2\x1e6'), [
    { type: 'message', data: '"a"' },
    { type: 'ping', data: '' },
    { type: 'noop', data: '' },
  ]);
  assert.throws(() => decodeEnginePacket('9oops'), (e: unknown) => e instanceof ProtocolError && e.code === 'BAD_PACKET');
  assert.throws(() => decodeEnginePacket(''), (e: unknown) => e instanceof ProtocolError && e.code === 'BAD_PACKET');
});

test('engine.io open packet as the real server sends it', () => {
  const open = parseOpenData('{"sid":"NSIWK6Js707m1N9zAAAA","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":22020096}');
  assert.equal(open.sid, 'NSIWK6Js707m1N9zAAAA');
  assert.equal(open.pingInterval, 25000);
  assert.equal(open.maxPayload, 22020096);
  assert.throws(() => parseOpenData('{"sid":1}'), (e: unknown) => e instanceof ProtocolError && e.code === 'BAD_PACKET');
  assert.throws(() => parseOpenData('nope'), (e: unknown) => e instanceof ProtocolError && e.code === 'BAD_JSON');
});

test('EJSON: large binaries (spliced in as base64 after stringify) give the same text as small ones would, in order', () => {
  const big = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
  const [a, b, c] = [big(4096, 1), big(1024, 2), big(70_000, 3)];
  // Integer-like keys come first in JSON.stringify's output: the splice must follow that order.
  const value = { z: a, 10: [b, Buffer.from([1, 2])], 2: { $binary: 'lookalike', c }, last: 'end' };
  const expected =
    `{"2":{"$binary":"lookalike","c":{"$binary":"${c.toString('base64')}"}},` +
    `"10":[{"$binary":"${b.toString('base64')}"},{"$binary":"AQI="}],` +
    `"z":{"$binary":"${a.toString('base64')}"},"last":"end"}`;
  const text = ejsonStringify(value);
  assert.equal(text, expected);
  assert.deepEqual(ejsonParse(text), value);
});

test('EJSON: a string equal to the splice mark, as a value or a key, next to large binaries, survives unchanged', () => {
  const mark = '\u0000ejson-binary\u0000';
  const body = Buffer.alloc(2048, 7);
  for (const value of [{ body, s: mark }, { [mark]: body }, { list: [mark, body, mark] }, { body, nested: { $binary: mark } }]) {
    assert.deepEqual(ejsonParse(ejsonStringify(value)), value);
  }
});

test('EJSON: 2,000 random trees of binaries of every size round-trip byte for byte', () => {
  const rng = new Rng(0x5eedf00d);
  const keys = ['0', '2', '10', 'a', 'body', '$binary', '$date', '\u0000ejson-binary\u0000'];
  const tree = (depth: number): unknown => {
    const k = rng.int(depth <= 0 ? 3 : 5);
    // Sizes on both sides of the 1 KiB threshold: two thirds of these are spliced.
    if (k === 0) return Buffer.from(Array.from({ length: rng.int(3000) }, () => rng.int(256)));
    if (k === 1) return rng.chance(0.1) ? '\u0000ejson-binary\u0000' : rng.int(1000);
    if (k === 2) return randomBytes(rng, 40);
    if (k === 3) return Array.from({ length: rng.int(6) }, () => tree(depth - 1));
    return Object.fromEntries(Array.from({ length: rng.int(6) }, () => [rng.pick(keys), tree(depth - 1)]));
  };
  // The splice order only shows where a tree has two spliced binaries or more (base64 of 1 KiB: 1368 characters).
  let several = 0;
  for (let i = 0; i < 2000; i++) {
    const value = tree(4);
    const text = ejsonStringify(value);
    if ((text.match(/"\$binary":"[A-Za-z0-9+/=]{1368,}"/g) ?? []).length >= 2) several++;
    assert.deepEqual(ejsonParse(text), value, `tree ${i}: ${text.slice(0, 200)}`);
  }
  assert.ok(several > 200, `trees with two spliced binaries or more: ${several}`);
});

test('EJSON: Buffers travel as $binary and come back as bytes; lookalike objects are escaped', () => {
  const body = Buffer.from('{"hello":"world"}');
  const text = ejsonStringify({ body, n: 1, nested: [Buffer.from([0, 255])] });
  assert.equal(text, '{"body":{"$binary":"eyJoZWxsbyI6IndvcmxkIn0="},"n":1,"nested":[{"$binary":"AP8="}]}');
  const back = ejsonParse(text) as { body: Buffer; nested: Buffer[] };
  assert.ok(Buffer.isBuffer(back.body));
  assert.deepEqual(back.body, body);
  assert.deepEqual(back.nested[0], Buffer.from([0, 255]));
  // A user object that looks like EJSON must survive a round trip unchanged.
  const tricky = { $binary: 'not really' };
  assert.deepEqual(ejsonParse(ejsonStringify(tricky)), tricky);
  assert.deepEqual(ejsonParse('{"$date":0}'), new Date(0));
  assert.throws(() => ejsonParse('{"$binary":5}'), (e: unknown) => e instanceof ProtocolError && e.code === 'BAD_EJSON');
  assert.throws(() => ejsonParse('{'), (e: unknown) => e instanceof ProtocolError && e.code === 'BAD_JSON');
  // __proto__ keys from a hostile frame never reach the prototype.
  const polluted = ejsonParse('{"__proto__":{"admin":true}}') as Record<string, unknown>;
  assert.equal(({} as Record<string, unknown>).admin, undefined);
  assert.equal(Object.getPrototypeOf(polluted), Object.prototype);
});

test('ejsonParse: without a $ key the value is what JSON.parse gives; $ keys, __proto__ keys and deep nesting anywhere still take the decoding path', () => {
  const plain = '{"type":"request","payload":{"url":"/a?b=1","headers":{"x-a":["1","2"]},"n":[1,{"c":null}]}}';
  assert.deepEqual(ejsonParse(plain), JSON.parse(plain));
  const deep = ejsonParse('{"a":[{"b":{"$binary":"AP8="}}],"d":{"e":{"$date":5}}}') as { a: Array<{ b: Buffer }>; d: { e: Date } };
  assert.ok(Buffer.isBuffer(deep.a[0]!.b) && deep.a[0]!.b.equals(Buffer.from([0, 255])));
  assert.ok(deep.d.e instanceof Date && deep.d.e.getTime() === 5);
  assert.deepEqual(ejsonParse('{"x":{"$ref":"kept"}}'), { x: { $ref: 'kept' } });
  const nested = ejsonParse('{"a":{"ok":1,"__proto__":{"admin":true}}}') as { a: Record<string, unknown> };
  assert.equal(Object.hasOwn(nested.a, '__proto__'), false, 'a __proto__ key is dropped at any depth');
  assert.equal(Object.getPrototypeOf(nested.a), Object.prototype);
  assert.equal(nested.a.ok, 1);
  for (const text of ['{"a":'.repeat(70) + '1' + '}'.repeat(70), '['.repeat(70) + ']'.repeat(70)]) {
    assert.throws(() => ejsonParse(text), (e: unknown) => e instanceof ProtocolError && e.code === 'BAD_EJSON', text.slice(0, 10));
  }
  assert.deepEqual(ejsonParse('['.repeat(60) + ']'.repeat(60)), JSON.parse('['.repeat(60) + ']'.repeat(60)));
});

test('tunnel messages: primus pings, emitter events with and without ack ids, acks', () => {
  assert.deepEqual(decodeTunnelMessage(encodePing(1795627652613)), { kind: 'ping', timestamp: '1795627652613' });
  assert.deepEqual(decodeTunnelMessage(encodePong('42')), { kind: 'pong', timestamp: '42' });
  assert.deepEqual(decodeTunnelMessage('"primus::server::close"'), { kind: 'server-close' });
  const identify = '{"type":0,"data":["identify",{"capabilities":["receive-post-streams"]}]}';
  assert.deepEqual(decodeTunnelMessage(identify), { kind: 'event', name: 'identify', args: [{ capabilities: ['receive-post-streams'] }] });
  assert.equal(encodeEvent('identify', [{ capabilities: ['receive-post-streams'] }]), identify);
  assert.equal(encodeEvent('request', [{ url: '/x' }], 1), '{"type":0,"data":["request",{"url":"/x"}],"id":1}');
  assert.equal(encodeAck(1, [{ status: 200 }]), '{"id":1,"type":1,"data":[{"status":200}]}');
  assert.deepEqual(decodeTunnelMessage('{"id":1,"type":1,"data":[{"status":200}]}'), { kind: 'ack', id: 1, args: [{ status: 200 }] });
});

test('tunnel messages: malformed frames are typed errors, never crashes', () => {
  const bad: Array<[string, string]> = [
    ['not json', 'BAD_JSON'],
    ['5', 'BAD_EMITTER_PACKET'],
    ['[1,2]', 'BAD_EMITTER_PACKET'],
    ['{"type":0}', 'BAD_EMITTER_PACKET'],
    ['{"type":0,"data":[]}', 'BAD_EMITTER_PACKET'],
    ['{"type":0,"data":[1]}', 'BAD_EMITTER_PACKET'],
    ['{"type":1,"data":[]}', 'BAD_EMITTER_PACKET'],
    ['{"type":7,"data":["x"]}', 'BAD_EMITTER_PACKET'],
    ['{"type":0,"data":["x"],"id":"1"}', 'BAD_EMITTER_PACKET'],
  ];
  for (const [frame, code] of bad) {
    assert.throws(() => decodeTunnelMessage(frame), (e: unknown) => e instanceof ProtocolError && e.code === code, frame);
  }
  assert.throws(() => decodeTunnelMessage(`"${'x'.repeat(100)}"`, 50), (e: unknown) => e instanceof ProtocolError && e.code === 'FRAME_TOO_LARGE');
});

test('emitter channel: ids count from 1, acks resolve their call, timeouts and close reject', async () => {
  const sent: string[] = [];
  const channel = new EmitterChannel((t) => sent.push(t));
  const first = channel.call('request', [{ url: '/a' }]);
  const second = channel.call('request', [{ url: '/b' }]);
  assert.match(sent[0]!, /"id":1}$/);
  assert.match(sent[1]!, /"id":2}$/);
  assert.equal(channel.acknowledge({ kind: 'ack', id: 2, args: ['b'] }), true);
  assert.equal(channel.acknowledge({ kind: 'ack', id: 99, args: [] }), false);
  assert.deepEqual(await second, ['b']);
  const timed = channel.call('slow', [], 10);
  // The ack timer is unref'd (it must not keep a process alive); hold the loop open meanwhile.
  const keepAlive = setTimeout(() => {}, 5_000);
  await assert.rejects(timed, (e: unknown) => e instanceof ProtocolError && e.code === 'ACK_TIMEOUT');
  clearTimeout(keepAlive);
  channel.close();
  await assert.rejects(first, (e: unknown) => e instanceof ProtocolError && e.code === 'CHANNEL_CLOSED');
  assert.throws(() => channel.emit('x'), (e: unknown) => e instanceof ProtocolError && e.code === 'CHANNEL_CLOSED');
  const reply = new EmitterChannel((t) => sent.push(t)).replier(7);
  reply({ status: 200 });
  reply({ status: 500 });
  assert.equal(sent.filter((s) => s.startsWith('{"id":7')).length, 1, 'a reply is sent at most once');
});

test('token hashing and masking match the contract examples', () => {
  const token = 'b9460892-5397-48f1-8697-488769ae3797';
  assert.equal(hashToken(token), 'cfd7ce253dee93e33e9dc1e7ce385459626c9dd65da1bd55a1719fce297f547c');
  assert.equal(maskToken(token), 'b946-...-3797');
});

test('request payloads: headers lowercased, bodies kept as bytes, bad shapes rejected', () => {
  const r = parseRelayRequest({ url: '/x', method: 'post', headers: { 'Content-Type': 'a', n: 1, bad: { x: 1 } }, body: Buffer.from('hi'), streamingID: 's' });
  assert.equal(r.method, 'POST');
  assert.deepEqual(r.headers, { 'content-type': 'a', n: '1' });
  assert.deepEqual(r.body, Buffer.from('hi'));
  assert.throws(() => parseRelayRequest({ method: 'GET' }), ProtocolError);
  assert.throws(() => parseRelayRequest('x'), ProtocolError);
  assert.throws(() => parseRelayRequest({ url: '/', method: 'GET', body: 5 }), ProtocolError);
});

test('ejsonStringify: plain values are written as JSON.stringify writes them, the rest in their wire form', () => {
  const frame = { type: 0, data: ['request', { url: '/a?b=1', method: 'GET', headers: { accept: '*/*', 'x-list': ['a', 'b'], 'x-é': 'ü\u0000"\\' }, skipped: undefined, requestId: 'r', streamingID: 's' }] };
  assert.equal(ejsonStringify(frame), JSON.stringify(frame));
  const bare = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1, b: [null, 'x'] });
  assert.equal(ejsonStringify(bare), '{"a":1,"b":[null,"x"]}');
  // A key that could need an $escape, a class instance (the wire form copies its own fields and
  // loses its prototype's toJSON), bytes and dates inside: written in their wire form. An own
  // toJSON is called either way.
  assert.equal(ejsonStringify({ h: { $binary: 'x', gone: undefined } }), '{"h":{"$escape":{"$binary":"x"}}}');
  assert.equal(ejsonStringify({ h: { $other: 'x' } }), '{"h":{"$other":"x"}}');
  assert.equal(ejsonStringify({ a: { toJSON: () => 1, b: 2 } }), '{"a":1}');
  class Shape {
    x = 1;
    toJSON() {
      return 2;
    }
  }
  assert.equal(ejsonStringify([new Shape()]), '[{"x":1}]');
  assert.equal(ejsonStringify({ deep: [[{ b: Buffer.from('hi') }]] }), '{"deep":[[{"b":{"$binary":"aGk="}}]]}');
  assert.equal(ejsonStringify({ d: new Date(5) }), '{"d":{"$date":5}}');
});

test('encodeEventWithStreamingId writes the bytes of encodeEvent with the payload copied and the streamingID added', () => {
  const payloads: object[] = [
    { url: '/a?b=1', method: 'GET', headers: { accept: '*/*', 'x-list': ['a', 'b'], 'x-q': '"\\\u2028' }, requestId: 'r' },
    { url: '/p', method: 'POST', headers: {}, body: Buffer.from('{"a":1}'), requestId: 'r' },
    { url: '/p', method: 'POST', headers: {}, body: '{"a":1}', skipped: undefined },
    { url: '/d', headers: { $binary: 'x' } },
    { streamingID: 'old', url: '/x' },
    {},
    ['not', 'an', 'object'],
  ];
  for (const payload of payloads) {
    const text = encodeEventWithStreamingId('request', payload, 'id-1.server-a');
    assert.equal(text, encodeEvent('request', [{ ...payload, streamingID: 'id-1.server-a' }]), JSON.stringify(payload));
    const decoded = decodeTunnelMessage(text);
    assert.equal(decoded.kind, 'event');
    assert.equal((decoded as { args: Array<{ streamingID: string }> }).args[0]!.streamingID, 'id-1.server-a');
  }
});
