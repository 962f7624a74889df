import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ProtocolError,
  decodeEnginePacket,
  decodeEnginePayload,
  encodeEnginePacket,
  parseOpenData,
  EnginePacketType,
  RECORD_SEPARATOR,
  ejsonParse,
  ejsonStringify,
  decodeTunnelMessage,
  encodeEvent,
  encodeAck,
  encodePing,
  encodePong,
  encodeServerClose,
  parseRelayRequest,
  parseAckResponse,
  encodeResponseHead,
  encodeTunnelAnswer,
  decodeTunnelAnswer,
  tunnelAnswerStreamingID,
  type EnginePacketName,
  type TunnelMessage,
} from '../../src/protocol/index.js';
import { fuzz, makeCorpus, mutateBytes, mutateStringN, randomJson, randomString, randomBytes, deepNest, type Rng, type FuzzStats } from '../support/fuzz.js';

/** The property for every decoder: a value, or a ProtocolError with a stable code, nothing else. */
function typedOrValue<T>(run: () => T): T | ProtocolError {
  try {
    return run();
  } catch (err) {
    if (err instanceof ProtocolError && typeof err.code === 'string' && err.code.length > 0) return err;
    throw new Error(`untyped ${err instanceof Error ? err.constructor.name : typeof err} escaped the decoder: ${(err as Error)?.message}`, { cause: err });
  }
}

function report(t: { diagnostic: (m: string) => void }, s: FuzzStats, extra = ''): void {
  t.diagnostic(`${s.cases} cases, seed ${s.seed}, ${Math.round(s.ms)} ms, slowest case #${s.slowestIndex} ${s.slowestMs.toFixed(1)} ms${extra}`);
}

/** Nothing a frame said may reach Object.prototype. */
function assertNoPollution(): void {
  assert.deepEqual(Object.keys(Object.prototype), []);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
}

/** Decoded trees hold only arrays, plain objects, Buffers, Dates and primitives: no borrowed prototypes. */
function assertPlainTree(v: unknown, depth = 0): void {
  if (v === null || typeof v !== 'object' || Buffer.isBuffer(v) || v instanceof Date) return;
  assert.ok(depth < 1000, 'decoded value is not absurdly deep');
  if (Array.isArray(v)) return v.forEach((x) => assertPlainTree(x, depth + 1));
  assert.equal(Object.getPrototypeOf(v), Object.prototype, 'decoded object has a plain prototype');
  for (const x of Object.values(v)) assertPlainTree(x, depth + 1);
}

const TYPES = Object.keys(EnginePacketType) as EnginePacketName[];

function enginePacket(rng: Rng): { type: EnginePacketName; data: string } {
  const type = rng.pick(TYPES);
  const data =
    type === 'open'
      ? JSON.stringify({ sid: randomString(rng, 20), upgrades: rng.chance(0.5) ? ['websocket'] : [], pingInterval: rng.int(60000), pingTimeout: rng.int(60000), maxPayload: rng.int(1e8) })
      : type === 'message'
        ? encodeEvent('request', [randomJson(rng, 3, true)], rng.int(1000))
        : type === 'ping' || type === 'pong'
          ? rng.pick(['', 'probe'])
          : '';
  return { type, data };
}

test('fuzz engine.io packets and payloads: typed errors only; encode/decode round-trips', async (t) => {
  const corpus = makeCorpus(64, (rng) => {
    const p = enginePacket(rng);
    return encodeEnginePacket(p.type, p.data);
  });
  const stats = await fuzz('engine.io', (c) => {
    const { rng } = c;
    const p = enginePacket(rng);
    const valid = encodeEnginePacket(p.type, p.data);
    const mode = rng.int(4);
    if (mode === 0) {
      c.input(valid);
      // Round trip holds for every packet we encode.
      assert.deepEqual(decodeEnginePacket(valid), p);
      const payload = [valid, encodeEnginePacket('noop')].join(RECORD_SEPARATOR);
      if (!p.data.includes(RECORD_SEPARATOR)) assert.deepEqual(decodeEnginePayload(payload), [p, { type: 'noop', data: '' }]);
      if (p.type === 'open') assert.equal(parseOpenData(p.data).sid, JSON.parse(p.data).sid);
      return;
    }
    const text = mode === 1 ? mutateStringN(rng, valid, corpus) : mode === 2 ? randomString(rng, 300) : mutateStringN(rng, [valid, valid].join(RECORD_SEPARATOR), corpus);
    c.input(text);
    const packet = typedOrValue(() => decodeEnginePacket(text));
    typedOrValue(() => decodeEnginePayload(text));
    if (!(packet instanceof ProtocolError)) {
      assert.ok(TYPES.includes(packet.type));
      assert.equal(encodeEnginePacket(packet.type, packet.data), text);
      if (packet.type === 'open') {
        const open = typedOrValue(() => parseOpenData(packet.data));
        if (!(open instanceof ProtocolError)) {
          assert.equal(typeof open.sid, 'string');
          assert.ok(Array.isArray(open.upgrades) && open.upgrades.every((u) => typeof u === 'string'), 'upgrades is a list of strings');
          assert.ok(Number.isFinite(open.pingInterval) && Number.isFinite(open.pingTimeout));
        }
      }
    }
    typedOrValue(() => parseOpenData(text.slice(1)));
  });
  report(t, stats);
  assertNoPollution();
});

/** A random value as it can travel in EJSON: JSON values, Buffers and Dates. */
function ejsonValue(rng: Rng): unknown {
  const v = randomJson(rng, 4, true);
  return rng.chance(0.1) ? { when: new Date(rng.int(2 ** 42)), v } : v;
}

test('fuzz EJSON parse (incl. $binary/$date/$escape): typed errors only; encode(decode(x)) === x for our frames', async (t) => {
  const corpus = makeCorpus(64, (rng) => ejsonStringify(ejsonValue(rng)));
  let decoded = 0;
  const stats = await fuzz('ejson', (c) => {
    const { rng } = c;
    const valid = ejsonStringify(ejsonValue(rng));
    const mode = rng.int(5);
    if (mode === 0) {
      c.input(valid);
      assert.equal(ejsonStringify(ejsonParse(valid)), valid);
      return;
    }
    let text: string;
    if (mode === 4) {
      const depth = rng.chance(0.002) ? 100_000 : 1 + rng.int(200);
      text = deepNest(depth, rng.pick(['array', 'object', 'escape'] as const), rng.pick(['1', '{"$binary":"AAEC"}', '"x"', '{"__proto__":{"polluted":1}}', '{"$escape":{"__proto__":{"polluted":1}}}']));
    } else text = mode === 1 || mode === 2 ? mutateStringN(rng, valid, corpus) : randomString(rng, 400);
    c.input(text);
    const value = typedOrValue(() => ejsonParse(text));
    if (!(value instanceof ProtocolError)) {
      decoded++;
      assertPlainTree(value);
      // Whatever decodes must encode again, and that encoding must decode to the same thing.
      const again = ejsonStringify(value);
      assert.equal(ejsonStringify(ejsonParse(again)), again);
    }
  });
  report(t, stats, `, ${decoded} mutated inputs decoded`);
  assert.ok(decoded > 0, 'some mutated inputs must still decode, or the mutators test nothing');
  assertNoPollution();
});

const ENCODED_MESSAGES = (rng: Rng): string => {
  switch (rng.int(6)) {
    case 0: return encodeEvent(rng.pick(['request', 'identify', 'chunk', 'service', `e${randomString(rng, 10)}`]), [randomJson(rng, 3, true)], rng.chance(0.5) ? rng.int(2 ** 31) : undefined);
    case 1: return encodeAck(rng.int(2 ** 31), [randomJson(rng, 3, true)]);
    case 2: return encodePing(rng.chance(0.5) ? rng.int(2 ** 42) : randomString(rng, 16));
    case 3: return encodePong(String(rng.int(2 ** 42)));
    case 4: return encodeServerClose();
    default: return encodeEvent('request', [{ url: `/repos/${randomString(rng, 8)}/x`, method: 'GET', headers: { 'x-a': 'b' }, body: randomBytes(rng, 40), streamingID: 'id' }], rng.int(100));
  }
};

function reencode(m: TunnelMessage): string {
  switch (m.kind) {
    case 'ping': return encodePing(m.timestamp);
    case 'pong': return encodePong(m.timestamp);
    case 'server-close': return encodeServerClose();
    case 'primus': return JSON.stringify(m.text);
    case 'event': return encodeEvent(m.name, m.args, m.id);
    case 'ack': return encodeAck(m.id, m.args);
  }
}

test('fuzz emitter/Primus frames (decodeTunnelMessage): typed errors only; our frames round-trip', async (t) => {
  const corpus = makeCorpus(64, ENCODED_MESSAGES);
  const kinds = new Map<string, number>();
  const stats = await fuzz('tunnel-frames', (c) => {
    const { rng } = c;
    const valid = ENCODED_MESSAGES(rng);
    const mode = rng.int(4);
    if (mode === 0) {
      c.input(valid);
      assert.equal(reencode(decodeTunnelMessage(valid)), valid);
      return;
    }
    const text = mode === 3 ? randomString(rng, 400) : mutateStringN(rng, valid, corpus);
    c.input(text);
    const max = rng.chance(0.1) ? rng.int(200) : undefined;
    const m = typedOrValue(() => decodeTunnelMessage(text, max));
    if (m instanceof ProtocolError) {
      kinds.set(m.code, (kinds.get(m.code) ?? 0) + 1);
      return;
    }
    kinds.set(m.kind, (kinds.get(m.kind) ?? 0) + 1);
    if (m.kind === 'event' || m.kind === 'ack') assertPlainTree(m.args);
    if (m.kind === 'event') assert.ok(typeof m.name === 'string' && m.name.length > 0 && Array.isArray(m.args));
    if (m.kind === 'ack' || (m.kind === 'event' && m.id !== undefined)) assert.ok(Number.isSafeInteger(m.kind === 'ack' ? m.id : m.id));
    // A decoded message re-encodes to a frame that decodes to the same message.
    const again = reencode(m);
    assert.equal(reencode(decodeTunnelMessage(again)), again);
  });
  report(t, stats, `, outcomes ${JSON.stringify(Object.fromEntries(kinds))}`);
  assertNoPollution();
});

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

test('fuzz request-event and ack payloads (parseRelayRequest, parseAckResponse): typed errors only, well-formed results', async (t) => {
  let relayed = 0;
  let acked = 0;
  const stats = await fuzz('request-event', (c) => {
    const { rng } = c;
    const request = { url: `/api/v3/${randomString(rng, 12)}`, method: rng.pick(['get', 'POST', 'GeT', '']), headers: { 'Content-Type': 'application/json', 'x-n': 5, 'x-list': ['a', 'b'] }, body: rng.chance(0.5) ? randomBytes(rng, 40) : randomString(rng, 40), streamingID: 'sid', requestId: 'rid' };
    const ack = { status: rng.pick([200, 404, 502, 0, 99, 600, 1.5, -1]), headers: { 'content-type': 'text/plain' }, body: rng.chance(0.5) ? randomBytes(rng, 20) : { json: true }, errorType: rng.chance(0.2) ? 'X' : undefined };
    // Payloads go through the wire encoding, get mutated there, and are decoded like the peers do.
    const wire = rng.int(3);
    let raw: unknown;
    if (wire === 0) raw = randomJson(rng, 4, true);
    else {
      const frame = encodeEvent('request', [wire === 1 ? request : ack], 1);
      const text = rng.chance(0.7) ? mutateStringN(rng, frame, [frame]) : frame;
      const m = typedOrValue(() => decodeTunnelMessage(text));
      if (m instanceof ProtocolError || m.kind !== 'event') return;
      raw = m.args[0];
    }
    c.input(raw);
    const r = typedOrValue(() => parseRelayRequest(raw));
    if (!(r instanceof ProtocolError)) {
      relayed++;
      assert.equal(typeof r.url, 'string');
      assert.equal(r.method, r.method.toUpperCase());
      assert.ok(isPlainRecord(r.headers), 'headers is a plain object');
      for (const [k, v] of Object.entries(r.headers)) {
        assert.equal(k, k.toLowerCase());
        assert.ok(typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string')), `header ${k} is a string or list of strings`);
      }
      assert.ok(r.body === undefined || typeof r.body === 'string' || Buffer.isBuffer(r.body));
    }
    const a = typedOrValue(() => parseAckResponse(raw));
    if (!(a instanceof ProtocolError)) {
      acked++;
      assert.ok(Number.isInteger(a.status));
      assert.ok(a.headers === undefined || isPlainRecord(a.headers), 'ack headers is a plain object');
      assert.ok(a.body === undefined || typeof a.body === 'string' || Buffer.isBuffer(a.body));
    }
  });
  report(t, stats, `, ${relayed} parsed as requests, ${acked} as acks`);
  assert.ok(relayed > 0 && acked > 0);
  assertNoPollution();
});

// ---------------------------------------------------------------- regressions found by the fuzzers

const TUNNEL_ANSWERS = (rng: Rng): Buffer => {
  const head = encodeResponseHead({ status: 100 + rng.int(500), headers: { [`x-${randomString(rng, 6)}`]: randomString(rng, 20) } });
  return encodeTunnelAnswer(`${rng.int(2 ** 31)}.${rng.int(100)}${randomString(rng, 8)}` || 'id', Buffer.concat([head, randomBytes(rng, 200)]));
};

test('fuzz answer frames over the tunnel (decodeTunnelAnswer): typed errors only; ours decode to what was encoded', async (t) => {
  const corpus = makeCorpus(64, TUNNEL_ANSWERS);
  const outcomes = new Map<string, number>();
  const stats = await fuzz('tunnel-answers', (c) => {
    const { rng } = c;
    const valid = TUNNEL_ANSWERS(rng);
    const frame = rng.chance(0.2) ? valid : rng.chance(0.9) ? mutateBytes(rng, valid, corpus) : randomBytes(rng, 300);
    c.input(frame);
    const got = typedOrValue(() => decodeTunnelAnswer(frame, rng.chance(0.1) ? rng.int(64) : undefined));
    const key = got instanceof ProtocolError ? got.code : 'decoded';
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    if (got instanceof ProtocolError) return;
    assert.equal(got.streamingID, tunnelAnswerStreamingID(frame));
    // Decoded means: the frame is exactly id, head and body, and encodes back to itself.
    assert.ok(Number.isInteger(got.head.status) && got.head.status >= 100 && got.head.status <= 599);
    assertPlainTree(got.head);
    if (frame === valid) assert.ok(encodeTunnelAnswer(got.streamingID, Buffer.concat([encodeResponseHead(got.head), got.body])).equals(valid), 'our frame round-trips');
  });
  report(t, stats, `, outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`);
  assert.ok((outcomes.get('decoded') ?? 0) > 0 && outcomes.size > 2, 'both decoded and refused frames must occur');
  assertNoPollution();
});

test('EJSON: 100 000 levels of nesting is a typed error, not a stack overflow', () => {
  for (const kind of ['array', 'object', 'escape'] as const) {
    assert.throws(() => ejsonParse(deepNest(100_000, kind)), (e: unknown) => e instanceof ProtocolError && e.code === 'BAD_EJSON', kind);
  }
});

test('EJSON: an out-of-range $date is a typed error (it decoded to an Invalid Date that re-encoded as null)', () => {
  // fuzz ejson seed=1592651789 case=381, minimised
  assert.throws(() => ejsonParse('{"$date":40121680629728256}'), (e: unknown) => e instanceof ProtocolError && e.code === 'BAD_EJSON');
  assert.throws(() => ejsonParse('{"$date":1e309}'), (e: unknown) => e instanceof ProtocolError && e.code === 'BAD_EJSON');
  assert.deepEqual(ejsonParse('{"$date":8640000000000000}'), new Date(8640000000000000));
});

test('EJSON: "__proto__" inside $escape cannot set the decoded object\'s prototype', () => {
  // fuzz ejson seed=1592651789 case=69, minimised
  const v = ejsonParse('{"$escape":{"__proto__":{"polluted":1},"$binary":"x"}}') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
  assert.equal(v.polluted, undefined);
  assert.deepEqual(Object.keys(v), ['$binary']);
});

test('engine.io open packet: a ping interval/timeout Node cannot use as a timer delay is refused; odd upgrades are dropped', () => {
  // fuzz engine.io seed=1592651789 case=20701, minimised: pingTimeout 1e309 parsed as Infinity (Node runs such a timer after 1 ms)
  for (const bad of ['1e309', '-1', '1.5', '2147483648', '"25000"']) {
    assert.throws(() => parseOpenData(`{"sid":"s","pingInterval":25000,"pingTimeout":${bad}}`), (e: unknown) => e instanceof ProtocolError && e.code === 'BAD_PACKET', bad);
  }
  const open = parseOpenData('{"sid":"s","upgrades":["websocket",1,null],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1e309}');
  assert.deepEqual(open, { sid: 's', upgrades: ['websocket'], pingInterval: 25000, pingTimeout: 20000, maxPayload: undefined });
});

test('ack and request payloads: headers that are a list or a Buffer, or carry "__proto__", give plain header objects', () => {
  // fuzz request-event property (ack headers is a plain object), minimised by hand
  assert.deepEqual(parseAckResponse({ status: 200, headers: ['a', 'b'] }).headers, {});
  assert.deepEqual(parseAckResponse({ status: 200, headers: Buffer.from('x') }).headers, {});
  const hostile = JSON.parse('{"status":200,"headers":{"__proto__":{"x":1},"a":"b"}}') as unknown;
  const ack = parseAckResponse(hostile);
  assert.equal(Object.getPrototypeOf(ack.headers), Object.prototype);
  assert.deepEqual(ack.headers, { a: 'b' });
  const req = parseRelayRequest(JSON.parse('{"url":"/x","method":"get","headers":{"__proto__":["a"],"A":"b"}}'));
  assert.equal(Object.getPrototypeOf(req.headers), Object.prototype);
  assert.deepEqual(req.headers, { a: 'b' });
});
