import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, SecretScrubber } from '../../src/observability/logger.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { lines, destination: destination as unknown as NodeJS.WritableStream & { write(s: string): boolean } };
}

test('secrets are scrubbed wherever they appear in a log line: message, nested fields, URLs, errors', () => {
  const token = 'b9460892-5397-48f1-8697-488769ae3797';
  const scrubber = new SecretScrubber();
  scrubber.add(token, 'ghp_origin_credential', 'abc', undefined);
  const { lines, destination } = capture();
  const log = createLogger({ level: 'debug', scrubber, destination });
  log.info({ url: `http://server/primus/${token}/?x=1`, nested: { deep: [`Bearer ghp_origin_credential`] } }, `connecting with ${token}`);
  log.error({ err: new Error(`failed for ${encodeURIComponent(token)}`) }, 'boom');
  log.info({ headers: { authorization: 'Basic Zm9vOmJhcg==', 'x-broker-token': 'whatever-value' } }, 'headers');
  const all = lines.join('');
  assert.equal(lines.length, 3);
  assert.ok(!all.includes(token), 'the token never appears');
  assert.ok(!all.includes('ghp_origin_credential'));
  assert.ok(!all.includes('Zm9vOmJhcg=='), 'authorization headers are redacted by path');
  assert.ok(!all.includes('whatever-value'));
  assert.match(all, /\[REDACTED\]/);
  // Short values would mangle ordinary text, so they are never treated as secrets.
  assert.match(all, /connecting with/);
  const first = JSON.parse(lines[0]!);
  assert.equal(first.level, 'info');
  assert.equal(first.msg, 'connecting with [REDACTED]');
});

test('a scrubber with no secrets leaves lines untouched', () => {
  assert.equal(new SecretScrubber().scrub('plain text'), 'plain text');
});
