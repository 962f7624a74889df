import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeadlineQueue, type DeadlineClock } from '../../src/server/deadline-queue.js';

/** A clock whose time only moves when the test says; timers fire in due order as it moves. */
class FakeClock implements DeadlineClock {
  time = 0;
  #next = 1;
  readonly timers = new Map<number, { at: number; fire: () => void }>();
  armed = 0;
  now(): number {
    return this.time;
  }
  setTimer(fire: () => void, ms: number): unknown {
    const id = this.#next++;
    this.armed++;
    this.timers.set(id, { at: this.time + ms, fire });
    return id;
  }
  clearTimer(timer: unknown): void {
    this.timers.delete(timer as number);
  }
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.timers].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].fire();
    }
    this.time = end;
  }
}

function setup(durationMs = 100) {
  const clock = new FakeClock();
  const expired: string[] = [];
  const queue = new DeadlineQueue<string>(durationMs, (item) => expired.push(`${item}@${clock.time}`), clock);
  return { clock, expired, queue };
}

test('an item expires at its duration, not before', () => {
  const { clock, expired, queue } = setup();
  queue.add('a');
  clock.advance(99);
  assert.deepEqual(expired, []);
  clock.advance(1);
  assert.deepEqual(expired, ['a@100']);
  assert.equal(queue.size, 0);
  assert.equal(clock.timers.size, 0, 'nothing left to wait for: no timer');
});

test('items added later expire later, each at its own time, with one timer armed at a time', () => {
  const { clock, expired, queue } = setup();
  queue.add('a');
  clock.advance(30);
  queue.add('b');
  clock.advance(30);
  queue.add('c');
  assert.equal(clock.timers.size, 1);
  clock.advance(40);
  assert.deepEqual(expired, ['a@100']);
  clock.advance(30);
  assert.deepEqual(expired, ['a@100', 'b@130']);
  clock.advance(30);
  assert.deepEqual(expired, ['a@100', 'b@130', 'c@160']);
});

test('a deleted item never expires; deleting the first moves the wait on to the next', () => {
  const { clock, expired, queue } = setup();
  const a = queue.add('a');
  clock.advance(50);
  queue.add('b');
  queue.delete(a);
  queue.delete(a);
  queue.delete(undefined);
  assert.equal(queue.size, 1);
  clock.advance(50);
  assert.deepEqual(expired, []);
  clock.advance(49);
  assert.deepEqual(expired, []);
  clock.advance(1);
  assert.deepEqual(expired, ['b@150']);
});

test('deleting from the middle and the end keeps the others in order; an item may be added again', () => {
  const { clock, expired, queue } = setup();
  const a = queue.add('a');
  const b = queue.add('b');
  clock.advance(10);
  const c = queue.add('c');
  queue.add('d');
  queue.delete(b);
  clock.advance(50);
  queue.delete(a);
  queue.add('a');
  const e = queue.add('e');
  queue.delete(e);
  queue.delete(c);
  clock.advance(100);
  assert.deepEqual(expired, ['d@110', 'a@160']);
  assert.equal(queue.size, 0);
});

test('deleting an item after it expired does nothing', () => {
  const { clock, expired, queue } = setup();
  const a = queue.add('a');
  clock.advance(100);
  queue.add('b');
  queue.delete(a);
  assert.equal(queue.size, 1);
  clock.advance(100);
  assert.deepEqual(expired, ['a@100', 'b@200']);
});

test('deleting every item leaves at most the one armed timer, and an empty queue re-arms on the next add', () => {
  const { clock, expired, queue } = setup();
  for (let i = 0; i < 1000; i++) queue.delete(queue.add(`r${i}`));
  assert.equal(clock.armed, 1, 'one timer for a thousand deadlines');
  clock.advance(100);
  assert.equal(clock.timers.size, 0);
  queue.add('late');
  assert.equal(clock.armed, 2);
  clock.advance(100);
  assert.deepEqual(expired, ['late@200']);
});

test('a handler may add and delete items; they keep their own deadlines', () => {
  const clock = new FakeClock();
  const expired: string[] = [];
  const queue: DeadlineQueue<string> = new DeadlineQueue<string>(100, (item) => {
    expired.push(`${item}@${clock.time}`);
    if (item === 'a') {
      queue.delete(b);
      queue.add('again');
    }
  }, clock);
  queue.add('a');
  const b = queue.add('b');
  clock.advance(100);
  assert.deepEqual(expired, ['a@100']);
  assert.equal(clock.timers.size, 1);
  clock.advance(100);
  assert.deepEqual(expired, ['a@100', 'again@200']);
});

test('a handler that throws leaves the later items their timer', () => {
  const clock = new FakeClock();
  const expired: string[] = [];
  const queue = new DeadlineQueue<string>(100, (item) => {
    if (item === 'bad') throw new Error('boom');
    expired.push(`${item}@${clock.time}`);
  }, clock);
  queue.add('bad');
  clock.advance(10);
  queue.add('good');
  assert.throws(() => clock.advance(90), /boom/);
  clock.advance(10);
  assert.deepEqual(expired, ['good@110']);
});

test('clear forgets every item and stops the timer', () => {
  const { clock, expired, queue } = setup();
  queue.add('a');
  queue.clear();
  assert.equal(clock.timers.size, 0);
  clock.advance(500);
  assert.deepEqual(expired, []);
});

test('with the system clock an item expires after its duration', async () => {
  // The queue's timer is unref'd: this interval keeps the test's process alive until it fires.
  const keepAlive = setInterval(() => {}, 5);
  try {
    const started = performance.now();
    const at = await new Promise<number>((resolve) => new DeadlineQueue<string>(20, () => resolve(performance.now())).add('a'));
    assert.ok(at - started >= 20, `expired after ${at - started} ms`);
  } finally {
    clearInterval(keepAlive);
  }
});

test('a deadline beyond what one timer can wait is waited for in steps', () => {
  const { clock, expired, queue } = setup(2 ** 32);
  queue.add('far');
  assert.ok([...clock.timers.values()].every((t) => t.at <= 2 ** 31 - 1));
  clock.advance(2 ** 31);
  assert.deepEqual(expired, []);
  clock.advance(2 ** 31);
  assert.deepEqual(expired, [`far@${2 ** 32}`]);
});
