import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hasEscapedKey, parseJson, parseStrict } from '../../src/json.js';
import { ejsonParse } from '../../src/protocol/index.js';
import { fuzz, makeCorpus, mutateStringN, randomJson, randomString } from '../support/fuzz.js';

/** Outcome of a parse: the value, or the error's class (messages differ between parsers). */
function outcome(run: () => unknown): { value: unknown } | { error: string } {
  try {
    return { value: run() };
  } catch (err) {
    // Nesting past parseStrict's cap is its one deliberate refusal of valid JSON.
    return { error: /Nesting too deep/.test((err as Error).message) ? 'too deep' : (err as Error).constructor.name };
  }
}

function keys(v: unknown, out: string[] = []): string[] {
  if (Array.isArray(v)) for (const x of v) keys(x, out);
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push(k) && keys(x, out);
  return out;
}

test('escaped keys keep their name after V8 has seen a "\\\\" key (nodejs/node#63785)', () => {
  // The bug's trigger: an object of the same shape with a backslash key, parsed first.
  JSON.parse('{"h":[],"\\\\":0}');
  const native = Object.keys(JSON.parse('{"h":1,"\\"":2}') as object)[1];
  assert.deepEqual(Object.keys(parseJson('{"h":1,"\\"":2}') as object), ['h', '"']);
  assert.deepEqual(Object.keys(parseJson('{"h":1,"\\n":2}') as object), ['h', '\n']);
  assert.deepEqual(Object.keys(parseJson('{"h":1,"\\u001f":2}') as object), ['h', '\u001f']);
  // The tunnel's decoder goes through it too: the key the fuzz run saw renamed in CI.
  const frame = '{"id":1,"type":1,"data":[{"\\"$escape\\"":null,"\\u001f":null}]}';
  JSON.parse('{"id":1,"type":1,"data":[{"\\"$escape\\"":null,"\\\\":null}]}');
  assert.deepEqual(Object.keys((ejsonParse(frame) as { data: [object] }).data[0]), ['"$escape"', '\u001f']);
  // Not asserted, only shown: whether this Node still has the bug.
  console.log(`native JSON.parse on ${process.version}: ${native === '"' ? 'correct' : `renamed the key to ${JSON.stringify(native)}`}`);
});

test('parseStrict gives what JSON.parse gives: values, key order, last duplicate, __proto__ as an own key', () => {
  const cases = [
    '0', '-0', '1e400', '-1.5e-3', '"a\\u00e9\\ud83d\\ude00"', 'true', 'false', 'null', ' [ ] ', '{}', '[[],{}]',
    '{"b":1,"a":2,"1":3,"b":4}', '{"__proto__":{"x":1}}', '{"\\u005f_proto__":1,"__proto__":2}', '{"a":[1,{"b":[null]}]}',
  ];
  for (const text of cases) {
    const strict = parseStrict(text);
    assert.deepStrictEqual(strict, JSON.parse(text), text);
    if (strict !== null && typeof strict === 'object' && !Array.isArray(strict)) assert.equal(Object.getPrototypeOf(strict), Object.prototype, text);
  }
  assert.equal(({} as { x?: unknown }).x, undefined, 'nothing reached Object.prototype');
  for (const bad of ['', ' ', '01', '1.', '-', '+1', '.5', '[1,]', '{"a":1,}', '{"a" 1}', '{a:1}', '"\t"', '"\\x"', '[1', '{"a":1', '"abc', '[1]]', 'nul', 'tru', '{"a":1}x', "'a'", 'NaN']) {
    assert.throws(() => JSON.parse(bad), SyntaxError, `native accepts ${JSON.stringify(bad)}?`);
    assert.throws(() => parseStrict(bad), SyntaxError, `strict must refuse ${JSON.stringify(bad)}`);
  }
  assert.throws(() => parseStrict('['.repeat(2_000) + ']'.repeat(2_000)), /Nesting too deep/);
});

test('fuzz parseJson and parseStrict against JSON.parse: same outcome; only the V8 key bug may differ', async (t) => {
  const corpus = makeCorpus(64, (rng) => JSON.stringify(randomJson(rng, 4)));
  let strictPath = 0;
  let differed = 0;
  const stats = await fuzz('json', (c) => {
    const { rng } = c;
    const valid = JSON.stringify(randomJson(rng, 4));
    const text = rng.chance(0.3) ? valid : rng.chance(0.8) ? mutateStringN(rng, valid, corpus) : randomString(rng, 200);
    c.input(text);
    const strict = outcome(() => parseStrict(text));
    const viaGuard = outcome(() => parseJson(text));
    if ('error' in strict && strict.error === 'too deep') return;
    const native = outcome(() => JSON.parse(text));
    assert.equal('error' in strict, 'error' in native, `strict ${JSON.stringify(strict)} vs native ${JSON.stringify(native)}`);
    assert.equal(JSON.stringify(viaGuard), JSON.stringify(strict));
    if ('value' in strict && hasEscapedKey(text)) strictPath++;
    // The guard must see every key that can only be written with an escape.
    if ('value' in strict && keys(strict.value).some((k) => /["\\\x00-\x1f]/.test(k))) assert.ok(hasEscapedKey(text), 'an escaped key slipped past the guard');
    if ('value' in strict && 'value' in native) {
      // JSON.stringify is not affected by the bug: text in, same text out.
      if (text === valid) assert.equal(JSON.stringify(strict.value), valid);
      const a = JSON.stringify(strict.value);
      const b = JSON.stringify(native.value);
      if (a !== b) {
        differed++;
        assert.match(b, /"\\\\":/, 'a difference must be the bug renaming a key to "\\"');
      }
    }
  });
  t.diagnostic(`${stats.cases} cases, seed ${stats.seed}, ${Math.round(stats.ms)} ms, slowest case #${stats.slowestIndex} ${stats.slowestMs.toFixed(1)} ms; ${strictPath} took the strict path; native differed ${differed} times`);
  assert.ok(strictPath > 0, 'the generator must produce escaped keys, or the strict path is not exercised');
});
