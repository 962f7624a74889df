import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionPool, type PoolMember } from '../../src/server/pool.js';

class Member implements PoolMember {
  state = 'ready';
  inFlight = 0;
  lastSeen = 0;
  constructor(readonly name: string) {}
  silentFor(now: number): number {
    return now - this.lastSeen;
  }
}

function pick(pool: ConnectionPool<Member>, token = 't', exclude = new Set<Member>(), now = 0): Member {
  const s = pool.select(token, exclude, now);
  assert.equal(s.kind, 'ok');
  return (s as { connection: Member }).connection;
}

test('equal connections take turns (round robin across every connection of the token)', () => {
  const pool = new ConnectionPool<Member>({ lateAfterMs: 30_000 });
  const members = ['a', 'b', 'c', 'd'].map((n) => new Member(n));
  for (const m of members) pool.add('t', m);
  const order = Array.from({ length: 8 }, () => pick(pool).name);
  assert.deepEqual(order, ['a', 'b', 'c', 'd', 'a', 'b', 'c', 'd']);
});

test('the connection with the fewest relays in flight wins; ties go round robin', () => {
  const pool = new ConnectionPool<Member>({ lateAfterMs: 30_000, slack: 0 });
  const [a, b, c] = ['a', 'b', 'c'].map((n) => new Member(n)) as [Member, Member, Member];
  for (const m of [a, b, c]) pool.add('t', m);
  a.inFlight = 3;
  b.inFlight = 1;
  c.inFlight = 1;
  assert.equal(pick(pool).name, 'b');
  b.inFlight++;
  assert.equal(pick(pool).name, 'c');
  c.inFlight++;
  // b and c tie at 2: the cursor moved past c, so b comes next.
  assert.equal(pick(pool).name, 'b');
});

test('with the default slack of 1, connections one relay apart take turns; a connection further behind is passed over', () => {
  const pool = new ConnectionPool<Member>({ lateAfterMs: 30_000 });
  const [a, b, c] = ['a', 'b', 'c'].map((n) => new Member(n)) as [Member, Member, Member];
  for (const m of [a, b, c]) pool.add('t', m);
  a.inFlight = 4;
  b.inFlight = 1;
  c.inFlight = 2;
  assert.deepEqual([pick(pool).name, pick(pool).name, pick(pool).name], ['b', 'c', 'b']);
  b.inFlight = 2;
  c.inFlight = 2;
  assert.deepEqual([pick(pool).name, pick(pool).name, pick(pool).name], ['c', 'b', 'c'], 'a (4) stays out while the others sit at 2');
});

test('simulated load: in-flight weighting keeps counts within a few requests of each other', () => {
  const pool = new ConnectionPool<Member>({ lateAfterMs: 30_000 });
  const members = Array.from({ length: 8 }, (_, i) => new Member(`m${i}`));
  for (const m of members) pool.add('t', m);
  const served = new Map<Member, number>();
  const active: Array<{ m: Member; left: number }> = [];
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let i = 0; i < 8000; i++) {
    while (active.length >= 32) {
      // finish a random active request
      const k = Math.floor(rnd() * active.length);
      active[k]!.m.inFlight--;
      active.splice(k, 1);
    }
    const m = pick(pool);
    m.inFlight++;
    served.set(m, (served.get(m) ?? 0) + 1);
    active.push({ m, left: 1 });
  }
  const counts = [...served.values()];
  assert.equal(counts.length, 8, 'every connection served');
  assert.ok(Math.max(...counts) <= 1.25 * Math.min(...counts), `counts ${counts.join(',')}`);
});

test('draining, closing and heartbeat-late connections are skipped; excluded ones too', () => {
  const pool = new ConnectionPool<Member>({ lateAfterMs: 30_000 });
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => new Member(n)) as [Member, Member, Member, Member];
  for (const m of [a, b, c, d]) pool.add('t', m);
  a.state = 'draining';
  b.state = 'closed';
  c.lastSeen = -40_000; // silent for 40 s at now=0
  assert.equal(pick(pool).name, 'd');
  assert.equal(pick(pool).name, 'd');
  assert.deepEqual(pool.select('t', new Set([d]), 0), { kind: 'not-ready' });
  c.lastSeen = 0;
  assert.equal(pick(pool, 't', new Set([d])).name, 'c');
});

test('no connection → no-connection; last one gone → recently-disconnected for the grace period, then no-connection', () => {
  const pool = new ConnectionPool<Member>({ lateAfterMs: 30_000, reconnectGraceMs: 60_000 });
  assert.deepEqual(pool.select('t', new Set(), 0), { kind: 'no-connection' });
  const a = new Member('a');
  const b = new Member('b');
  pool.add('t', a);
  pool.add('t', b);
  assert.equal(pool.remove('t', a, 1000), 1);
  assert.equal(pick(pool, 't', new Set(), 1000).name, 'b');
  assert.equal(pool.remove('t', b, 1000), 0);
  assert.deepEqual(pool.select('t', new Set(), 30_000), { kind: 'recently-disconnected' });
  assert.deepEqual(pool.select('t', new Set(), 61_001), { kind: 'no-connection' });
  pool.add('t', a);
  assert.equal(pool.recentlyDisconnected('t', 1000), false, 'a new connection clears the mark');
  assert.deepEqual(pool.tokens(), ['t']);
});

test('removing a member keeps the rotation fair for the rest', () => {
  const pool = new ConnectionPool<Member>({ lateAfterMs: 30_000 });
  const members = ['a', 'b', 'c'].map((n) => new Member(n));
  for (const m of members) pool.add('t', m);
  assert.equal(pick(pool).name, 'a');
  assert.equal(pick(pool).name, 'b');
  pool.remove('t', members[0]!);
  assert.deepEqual([pick(pool).name, pick(pool).name, pick(pool).name], ['c', 'b', 'c']);
});
