import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, Registry, TalliedCounter, TalliedGauge, TalliedHistogram } from '../../src/observability/metrics.js';

test('a tallied counter shows every increment, per label value, whenever it is read', async () => {
  const registry = new Registry();
  const c = new TalliedCounter({ name: 't_total', help: 'h', labelNames: ['outcome'], registers: [registry] });
  c.inc({ outcome: 'answered' });
  c.inc({ outcome: 'answered' }, 2);
  c.inc({ outcome: 'timeout' });
  assert.match(await registry.metrics(), /t_total\{outcome="answered"\} 3\n.*t_total\{outcome="timeout"\} 1/s);
  c.inc({ outcome: 'answered' }, 4);
  const values = (await c.counter.get()).values.map((v) => [v.labels.outcome, v.value]);
  assert.deepEqual(values, [['answered', 7], ['timeout', 1]]);
  assert.match(await registry.metrics(), /t_total\{outcome="answered"\} 7/, 'read twice: counted once');
});

test('a tallied gauge shows its current value when read', async () => {
  const registry = new Registry();
  const g = new TalliedGauge({ name: 'g_now', help: 'h', registers: [registry] });
  g.inc();
  g.inc();
  g.dec();
  assert.match(await registry.metrics(), /^g_now 1$/m);
  g.dec();
  assert.equal((await g.gauge.get()).values[0]!.value, 0);
});

test('a tallied counter of several labels keeps each label set apart, and forgets one that is removed', async () => {
  const registry = new Registry();
  const c = new TalliedCounter({ name: 'm_total', help: 'h', labelNames: ['direction', 'status', 'connection'] as const, registers: [registry] });
  c.inc({ direction: 'inbound', status: '2xx' });
  c.inc({ direction: 'inbound', status: '2xx' }, 2);
  c.inc({ direction: 'inbound', status: '5xx' });
  c.inc({ direction: 'webhook', status: '2xx', connection: 'gh' });
  const text = await registry.metrics();
  assert.match(text, /^m_total\{direction="inbound",status="2xx"\} 3$/m);
  assert.match(text, /^m_total\{direction="inbound",status="5xx"\} 1$/m);
  assert.match(text, /^m_total\{direction="webhook",status="2xx",connection="gh"\} 1$/m);
  c.remove({ direction: 'inbound', status: '5xx' });
  c.inc({ direction: 'inbound', status: '2xx' });
  const again = await registry.metrics();
  assert.doesNotMatch(again, /status="5xx"/);
  assert.match(again, /^m_total\{direction="inbound",status="2xx"\} 4$/m);
});

test('a tallied counter refuses, at the call, a label it was not made with and a negative increment', () => {
  const c = new TalliedCounter({ name: 'r_total', help: 'h', labelNames: ['outcome'], registers: [new Registry()] });
  assert.throws(() => c.inc({ outcome: 'a', other: 'b' } as never), /"other" is not included in initial labelset of r_total/);
  assert.throws(() => c.inc({ outcome: 'a' }, -1), /not possible to decrease/);
  const bare = new TalliedCounter({ name: 'b_total', help: 'h', registers: [new Registry()] });
  bare.inc();
  bare.inc(2);
  return bare.counter.get().then((m) => assert.equal(m.values[0]!.value, 3));
});

test('a tallied gauge of a label keeps a value per label set', async () => {
  const registry = new Registry();
  const g = new TalliedGauge({ name: 'f_now', help: 'h', labelNames: ['connection'], registers: [registry] });
  g.inc();
  g.inc({ connection: 'gl' }, 3);
  g.dec({ connection: 'gl' });
  const text = await registry.metrics();
  assert.match(text, /^f_now 1$/m);
  assert.match(text, /^f_now\{connection="gl"\} 2$/m);
  g.set({ connection: 'gl' }, 7);
  assert.match(await registry.metrics(), /^f_now\{connection="gl"\} 7$/m);
});

test("a tallied histogram reads line for line as prom-client's Histogram fed the same observations", async () => {
  const ours = new Registry();
  const theirs = new Registry();
  const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
  const h = new TalliedHistogram({ name: 'lat_seconds', help: 'Time to the head', labelNames: ['variant'], buckets, registers: [ours] });
  const p = new Histogram({ name: 'lat_seconds', help: 'Time to the head', labelNames: ['variant'], buckets, registers: [theirs] });
  const samples: Array<[string, number]> = [['stream', 0.004], ['stream', 0.005], ['ack', 0.3], ['stream', 0.0051], ['stream', 61], ['ack', 2.5], ['stream', 0]];
  assert.equal(await ours.metrics(), await theirs.metrics(), 'no observation yet');
  for (const [variant, v] of samples) {
    h.observe({ variant }, v);
    p.observe({ variant }, v);
  }
  const text = await ours.metrics();
  assert.equal(text, await theirs.metrics());
  assert.match(text, /^lat_seconds_bucket\{le="0.005",variant="stream"\} 3$/m);
  assert.match(text, /^lat_seconds_bucket\{le="\+Inf",variant="stream"\} 5$/m);
  assert.match(text, /^lat_seconds_count\{variant="ack"\} 2$/m);
  assert.throws(() => h.observe({ variant: 'x' }, Number.NaN), /not a valid number/);
  const plainOurs = new Registry();
  const plainTheirs = new Registry();
  const hp = new TalliedHistogram({ name: 'plain_seconds', help: 'h', registers: [plainOurs] });
  const pp = new Histogram({ name: 'plain_seconds', help: 'h', registers: [plainTheirs] });
  assert.equal(await plainOurs.metrics(), await plainTheirs.metrics(), 'unlabelled: zero buckets before any observation');
  hp.observe(0.2);
  pp.observe(0.2);
  assert.equal(await plainOurs.metrics(), await plainTheirs.metrics());
});
