import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry, TalliedCounter, TalliedGauge } from '../../src/observability/metrics.js';

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
