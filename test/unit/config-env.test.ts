import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EnvReader, redactUrl } from '../../src/config/env.js';
import { ConfigError } from '../../src/config/errors.js';

test('EnvReader collects every problem and names each variable', () => {
  const r = new EnvReader({ PORT: 'eighty', ENABLED: 'maybe', URL: 'ftp://x', N: '70000', LEVEL: 'loud', EMPTY: '  ' });
  r.required('BROKER_TOKEN');
  assert.equal(r.port('PORT', 7341), 7341);
  assert.equal(r.bool('ENABLED', false), false);
  r.url('URL', r.string('URL'));
  r.port('N', 1);
  r.enumOf('LEVEL', ['info', 'debug'] as const, 'info');
  assert.equal(r.string('EMPTY'), undefined, 'blank values count as unset');
  assert.throws(() => r.done(), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.code, 'CONFIG_INVALID');
    for (const name of ['BROKER_TOKEN', 'PORT', 'ENABLED', 'URL', 'N', 'LEVEL']) assert.match(e.message, new RegExp(`\\b${name}\\b`));
    assert.equal(e.problems.length, 6);
    return true;
  });
});

test("EnvReader accepts Snyk's boolean spellings and valid values", () => {
  const r = new EnvReader({ A: 'YES', B: 'true', C: 'no', D: 'False', P: '8080', U: 'https://api.snyk.io' });
  assert.deepEqual([r.bool('A', false), r.bool('B', false), r.bool('C', true), r.bool('D', true)], [true, true, false, false]);
  assert.equal(r.port('P', 1), 8080);
  assert.equal(r.url('U', r.string('U'))?.host, 'api.snyk.io');
  assert.equal(r.raw('MISSING', 'U'), 'https://api.snyk.io', 'the first set name wins');
  r.done();
});

test('URLs with credentials are redacted in messages', () => {
  assert.equal(redactUrl('http://user:secret@proxy:3128'), 'http://***@proxy:3128');
  const r = new EnvReader({ HTTPS_PROXY: 'http://user:secret@proxy:port' });
  r.url('HTTPS_PROXY', r.string('HTTPS_PROXY'));
  assert.throws(() => r.done(), (e: unknown) => e instanceof ConfigError && !e.message.includes('secret'));
});
