import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TimedMarks } from '../../src/server/timed-marks.js';

test('TimedMarks: a mark holds for its time, lapses after it, and clear() drops it at once', () => {
  const marks = new TimedMarks(1000);
  assert.equal(marks.has('a', 0), false);
  marks.mark('a', 0);
  assert.equal(marks.has('a', 999), true);
  assert.equal(marks.has('a', 1000), false, 'lapsed');
  assert.equal(marks.has('a', 500), false, 'a lapsed mark is gone, not revived by an earlier time');
  marks.mark('b', 0);
  marks.clear('b');
  assert.equal(marks.has('b', 1), false);
});
