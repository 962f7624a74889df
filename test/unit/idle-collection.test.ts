import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { BUSY_UTILISATION, GROWTH_BYTES, IDLE_UTILISATION, IdleCollectionPolicy, fullCollection, startIdleCollection } from '../../src/idle-collection.js';
import { loadRuntimeConfig } from '../../src/config/runtime.js';
import { ConfigError } from '../../src/config/errors.js';

const MiB = 1024 * 1024;

test('the policy collects once per busy spell, in the first idle window after it', () => {
  const p = new IdleCollectionPolicy();
  const heap = 20 * MiB;
  assert.equal(p.observe({ utilization: 0, heapBytes: heap }), false, 'idle from the start: nothing to give back');
  assert.equal(p.observe({ utilization: 0.5, heapBytes: heap }), false, 'busy: never during load');
  assert.equal(p.observe({ utilization: BUSY_UTILISATION, heapBytes: heap }), false);
  assert.equal(p.observe({ utilization: (BUSY_UTILISATION + IDLE_UTILISATION) / 2, heapBytes: heap }), false, 'winding down is not idle yet');
  assert.equal(p.observe({ utilization: IDLE_UTILISATION / 2, heapBytes: heap }), true, 'first idle window after the spell');
  p.collected(heap);
  assert.equal(p.observe({ utilization: 0, heapBytes: heap }), false, 'once per spell');
  assert.equal(p.observe({ utilization: 0.3, heapBytes: heap }), false);
  assert.equal(p.observe({ utilization: 0, heapBytes: heap }), true, 'the next spell gets its own');
});

test('the policy also collects when an idle process has grown well past the last collection', () => {
  const p = new IdleCollectionPolicy();
  assert.equal(p.observe({ utilization: 0, heapBytes: 20 * MiB }), false);
  assert.equal(p.observe({ utilization: 0.01, heapBytes: 20 * MiB + GROWTH_BYTES - 1 }), false);
  assert.equal(p.observe({ utilization: 0.01, heapBytes: 20 * MiB + GROWTH_BYTES }), true);
  p.collected(22 * MiB);
  assert.equal(p.observe({ utilization: 0.01, heapBytes: 30 * MiB }), false, 'growth counts from what the collection left');
  assert.equal(p.observe({ utilization: 0.01, heapBytes: 22 * MiB + GROWTH_BYTES }), true);
});

test('startIdleCollection reads a window per tick, collects when told, and hides its own time from the next window', () => {
  const readings = [0.4, 0.001, 0.9 /* the collection's own time, read right after it */, 0.001];
  let utilizationCalls = 0;
  let heap = 60 * MiB;
  let clock = 0;
  const collections: number[] = [];
  const reports: unknown[] = [];
  const idle = startIdleCollection({
    collect: () => {
      collections.push(clock);
      clock += 42;
      heap = 20 * MiB;
    },
    utilization: () => readings[utilizationCalls++] ?? 0,
    heapBytes: () => heap,
    now: () => clock,
    windowMs: 3_600_000,
    onCollect: (r) => reports.push(r),
  });
  try {
    assert.equal(idle.tick(), undefined, 'busy window');
    const report = idle.tick();
    assert.deepEqual(report, { durationMs: 42, heapBeforeBytes: 60 * MiB, heapAfterBytes: 20 * MiB });
    assert.deepEqual(reports, [report]);
    assert.equal(utilizationCalls, 3, 'the window is read again after the collection, so its time is not counted as load');
    assert.equal(idle.tick(), undefined, 'idle, nothing new since');
    assert.equal(collections.length, 1);
  } finally {
    idle.stop();
  }
});

/** Fills the holder in a frame of its own (no stack slot of the test keeps the objects), then lets them survive a few scavenges, into the old generation, where only a full collection reaches. */
function fillAndChurn(holder: { keep?: unknown[] }): void {
  const keep: unknown[] = [];
  for (let i = 0; i < 400_000; i++) keep.push({ n: i, s: `item ${i}` });
  holder.keep = keep;
  for (let round = 0; round < 4; round++) for (let i = 0; i < 200_000; i++) void { round, i };
}

/** The test runner has no --expose-gc: the test takes V8's gc through a throwaway context (the programs get it from the flag). */
function testGc(): unknown {
  setFlagsFromString('--expose-gc');
  try {
    return runInNewContext('gc');
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

test('fullCollection frees garbage promoted to the old generation; without an exposed gc there is none', () => {
  assert.equal(fullCollection(undefined), undefined);
  const collect = fullCollection(testGc());
  assert.ok(collect, 'a gc function gives a collection');
  const holder: { keep?: unknown[] } = {};
  fillAndChurn(holder);
  const before = process.memoryUsage().heapUsed;
  holder.keep = undefined;
  collect();
  const after = process.memoryUsage().heapUsed;
  assert.ok(before - after > 10 * MiB, `heap used went ${Math.round(before / MiB)} → ${Math.round(after / MiB)} MiB`);
});

test('BROKER_NODE_IDLE_GC: on by default, false turns it off, anything else is a config error naming it', () => {
  assert.deepEqual(loadRuntimeConfig({}), { idleCollection: true });
  assert.deepEqual(loadRuntimeConfig({ BROKER_NODE_IDLE_GC: 'false' }), { idleCollection: false });
  assert.deepEqual(loadRuntimeConfig({ BROKER_NODE_IDLE_GC: 'YES' }), { idleCollection: true });
  assert.throws(() => loadRuntimeConfig({ BROKER_NODE_IDLE_GC: 'sometimes' }), (e: unknown) => e instanceof ConfigError && /BROKER_NODE_IDLE_GC/.test(e.message));
});
