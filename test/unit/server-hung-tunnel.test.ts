// A hung client (SIGSTOP: its tunnel stays open, nothing answers) is found by an extra ping while
// it holds relays and stays silent; until it answers, new requests go to other connections. The
// fault suite (test/faults/faults-client, SIGSTOP 40 s) measures the effect end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection, type ConnectionHooks, type TunnelTransport } from '../../src/server/connection.js';
import { ConnectionPool } from '../../src/server/pool.js';

const hooks: ConnectionHooks = { onIdentify() {}, onEvent() {}, onPing() {}, onBadFrame() {}, onAnswer() {}, onClosed() {} };

function connection(pings: { n: number }, canPing = true): Connection {
  const transport: TunnelTransport = { send() {}, close() {}, ...(canPing ? { ping: () => (pings.n++, true) } : {}) };
  const c = new Connection(transport, 't', 'client', 'primary', hooks, 1 << 20, 0);
  c.state = 'ready';
  return c;
}

test('a probe unanswered past its deadline makes the connection unresponsive; any packet clears it', () => {
  const pings = { n: 0 };
  const c = connection(pings);
  assert.equal(c.probe(3000, 1000), true);
  assert.equal(pings.n, 1);
  assert.equal(c.probe(3000, 2000), false, 'a second probe while one is unanswered');
  assert.equal(c.unresponsive(3999), false, 'before the deadline');
  assert.equal(c.unresponsive(4001), true);
  c.touch(4500);
  assert.equal(c.unresponsive(5000), false, 'the client answered');
  assert.equal(c.probe(3000, 7000), true, 'probed again later');
  assert.equal(pings.n, 2);
});

test('a transport that cannot ping (engine.io v3) is never probed, never unresponsive', () => {
  const c = connection({ n: 0 }, false);
  assert.equal(c.probe(3000, 1000), false);
  assert.equal(c.unresponsive(10_000), false);
});

test('the pool passes over an unresponsive connection, and takes it when nothing else is usable', () => {
  const pool = new ConnectionPool<Connection>({ lateAfterMs: 30_000 });
  const hung = connection({ n: 0 });
  const other = connection({ n: 0 });
  pool.add('t', hung);
  pool.add('t', other);
  hung.probe(3000, 1);
  for (let i = 0; i < 4; i++) {
    const s = pool.select('t', new Set(), 5000);
    assert.equal(s.kind, 'ok');
    assert.equal((s as { connection: Connection }).connection, other);
  }
  const last = pool.select('t', new Set([other]), 5000);
  assert.equal(last.kind, 'ok', 'an unresponsive connection still beats none');
  assert.equal((last as { connection: Connection }).connection, hung);
  // A caller with somewhere else to go (a forwarded request: its forwarder tries the next target) is told not-ready.
  assert.equal(pool.select('t', new Set([other]), 5000, false).kind, 'not-ready');
});

test('a probe outstanding while the server itself was stalled gets that time back', () => {
  const c = connection({ n: 0 });
  assert.equal(c.probe(600, 1000), true);
  c.postponeProbe(2000);
  assert.equal(c.unresponsive(3000), false, 'the server did not run for 2 s of it');
  assert.equal(c.unresponsive(3601), true);
  c.touch(3700);
  c.postponeProbe(5000);
  assert.equal(c.unresponsive(4000), false, 'answered: nothing to postpone');
});
