// The table of x-broker-failure reasons (src/protocol/failures.ts): the wire strings and statuses
// stay what they were, each entry is well formed, peer forwarding's retry rule follows from the
// retry flags, docs/failures.md lists every entry, and no reason is written out anywhere else in
// src/ or test/ (a scan of the sources, which is shown to catch a literal first).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { STATUS_CODES } from 'node:http';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { FAILURES, failureOf, peerMayRetryElsewhere, PARSER_FAILURES, WEBHOOK_NO_CONNECTION, type Failure } from '../../src/protocol/failures.js';
import { REPO_ROOT } from '../support/paths.js';

const ALL: Failure[] = Object.values(FAILURES);

test('the wire strings and statuses are the ones the programs have always sent', () => {
  // The one place outside the table that spells the reasons out: a change here is a wire change.
  const wire: Record<string, number> = {
    'bad-request': 400,
    'headers-too-large': 431,
    'headers-timeout': 408,
    'body-too-large': 413,
    'filter-blocked': 401,
    'internal-secret-required': 401,
    'not-found': 404,
    'internal-error': 500,
    'no-connection': 404,
    'connection-not-ready': 503,
    'server-draining': 503,
    'tunnel-closed': 502,
    'peer-failed': 502,
    'peer-unreachable': 502,
    'bad-response': 502,
    'relay-error': 502,
    'response-timeout': 504,
    'not-implemented': 501,
    'frame-too-large': 413,
    'unknown-context': 404,
    'unknown-request-type': 401,
    'auth-required': 401,
    'auth-invalid': 401,
    'auth-unavailable': 401,
    'auth-unknown-tunnel': 401,
    'github-app-token-unavailable': 503,
    'client-draining': 503,
    'not-ready': 503,
    'webhook-timeout': 504,
    'bad-answer': 502,
    'api-fallback-failed': 502,
    'unknown-check': 404,
    'origin-variable-unset': 502,
    'filters-reload-failed': 500,
    'git-tree-refused': 401,
    'commit-payload-invalid': 400,
    'commit-signing-failed': 500,
    'no-live-server': 503,
    'store-unavailable': 503,
    'warming-up': 429,
    'max-clients-per-token': 429,
    'method-not-allowed': 405,
    'invalid-hashed-token': 400,
    'invalid-client-id': 400,
    'missing-client-id': 400,
    'invalid-server-id': 400,
    'invalid-body': 400,
    'invalid-attribute': 400,
    'invalid-request-type': 400,
  };
  assert.deepEqual(Object.fromEntries(ALL.map((f) => [f.reason, f.status])), wire);
  // The client's webhook server answers no-connection with 503 (an SCM retries a 5xx).
  assert.deepEqual({ reason: WEBHOOK_NO_CONNECTION.reason, status: WEBHOOK_NO_CONNECTION.status }, { reason: 'no-connection', status: 503 });
});

test('every entry is well formed: unique kebab-case reason, code = reason in upper snake case, an error status, senders, retry flags, a meaning', () => {
  const reasons = new Set<string>();
  for (const f of [...ALL, WEBHOOK_NO_CONNECTION]) {
    assert.match(f.reason, /^[a-z]+(-[a-z]+)*$/, f.reason);
    assert.equal(f.code, f.reason.toUpperCase().replace(/-/g, '_'), f.reason);
    assert.ok(Number.isInteger(f.status) && f.status >= 400 && f.status <= 599 && STATUS_CODES[f.status] !== undefined, `${f.reason}: status ${f.status}`);
    assert.ok(f.from.length > 0 && f.from.every((p) => p === 'server' || p === 'client' || p === 'dispatcher'), `${f.reason}: from ${f.from.join()}`);
    assert.equal(new Set(f.from).size, f.from.length, `${f.reason}: a sender twice`);
    assert.equal(typeof f.retry.here, 'boolean', f.reason);
    assert.ok(f.retry.elsewhere === true || f.retry.elsewhere === false || f.retry.elsewhere === 'if-marked', f.reason);
    assert.ok(f.meaning.length > 10, `${f.reason}: no meaning`);
    assert.ok(Object.isFrozen(f), `${f.reason}: not frozen`);
  }
  for (const [key, f] of Object.entries(FAILURES)) {
    assert.equal(key, f.code);
    assert.ok(!reasons.has(f.reason), `reason ${f.reason} twice`);
    reasons.add(f.reason);
    assert.equal(failureOf(f.reason), f);
  }
  assert.equal(failureOf('no-such-reason'), undefined);
  assert.equal(failureOf(undefined), undefined);
  assert.equal(failureOf(['no-connection']), undefined);
  assert.deepEqual(Object.values(PARSER_FAILURES).map((f) => f.reason).sort(), ['bad-request', 'headers-timeout', 'headers-too-large']);
});

test("peer forwarding tries another target exactly for the server's 'nothing was relayed' reasons, and for tunnel-closed only when marked", () => {
  const derived = (marked: boolean) => ALL.filter((f) => peerMayRetryElsewhere(f.status, f.reason, marked)).map((f) => f.reason).sort();
  // What server/peer-forward.ts had as NOT_RELAYED, now derived from the retry flags.
  assert.deepEqual(derived(false), ['connection-not-ready', 'no-connection', 'server-draining']);
  assert.deepEqual(derived(true), ['connection-not-ready', 'no-connection', 'server-draining', 'tunnel-closed']);
  // Only with the status the server sends it with, only for reasons a server sends, only for ours.
  assert.equal(peerMayRetryElsewhere(502, FAILURES.NO_CONNECTION.reason, false), false);
  assert.equal(peerMayRetryElsewhere(503, FAILURES.TUNNEL_CLOSED.reason, true), false);
  assert.equal(peerMayRetryElsewhere(FAILURES.CLIENT_DRAINING.status, FAILURES.CLIENT_DRAINING.reason, true), false);
  assert.equal(peerMayRetryElsewhere(FAILURES.RESPONSE_TIMEOUT.status, FAILURES.RESPONSE_TIMEOUT.reason, true), false);
  assert.equal(peerMayRetryElsewhere(404, undefined, true), false);
  assert.equal(peerMayRetryElsewhere(503, 'server-draining-soon', true), false);
  // A request that may have reached the origin is never marked retryable elsewhere.
  for (const f of ALL.filter((x) => x.retry.elsewhere === true)) assert.ok(/[Nn]othing was relayed|another replica/.test(f.meaning), `${f.reason}: says it may be retried elsewhere, so its meaning must say nothing was relayed`);
});

test('docs/failures.md lists every reason with its status and senders, and every reason the docs name exists', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'failures.md'), 'utf8');
  const rows = new Map<string, string[]>();
  for (const line of doc.split('\n')) {
    const m = /^\| `([a-z-]+)` \|( \d{3}.*)\|$/.exec(line);
    if (m) rows.set(m[1]!, m[2]!.split('|').map((c) => c.trim()));
  }
  assert.deepEqual([...rows.keys()].sort(), ALL.map((f) => f.reason).sort());
  for (const f of ALL) {
    const [status, from] = rows.get(f.reason)!;
    assert.ok(status!.startsWith(String(f.status)), `${f.reason}: docs say ${status}, the table ${f.status}`);
    assert.equal(from, f.from.join(', '), f.reason);
  }
  assert.match(rows.get(WEBHOOK_NO_CONNECTION.reason)![0]!, new RegExp(`${WEBHOOK_NO_CONNECTION.status} \\(client\\)`));
  // Reasons quoted elsewhere in the docs (`x-broker-failure: foo`, and the server's failure table).
  const files = [join(REPO_ROOT, 'README.md'), ...readdirSync(join(REPO_ROOT, 'docs')).map((n) => join(REPO_ROOT, 'docs', n))];
  let quoted = 0;
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/x-broker-failure: ([a-z-]+)|^\| (\d{3})[^|]*\| `([a-z-]+)` \|/gm)) {
      const reason = m[1] ?? m[3]!;
      const f = failureOf(reason);
      assert.ok(f, `${relative(REPO_ROOT, file)} names x-broker-failure ${reason}, which is not in src/protocol/failures.ts`);
      if (m[2] !== undefined) assert.equal(Number(m[2]), f.status, `${relative(REPO_ROOT, file)}: ${reason}`);
      quoted++;
    }
  }
  assert.ok(quoted > 10, `only ${quoted} reasons found in the docs: the pattern no longer matches them`);
});

interface Literal {
  value: string;
  line: number;
  /** The code just before the literal (same line), to tell `reason: 'x'` from other strings. */
  before: string;
}

/**
 * The string literals of a TypeScript source (quoted strings and the text of templates, whose
 * `${...}` parts are read as code), comments and regex literals skipped.
 */
function stringLiterals(source: string): Literal[] {
  const out: Literal[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const newline = () => {
    line++;
    lineStart = i + 1;
  };
  /** Code until the end, or until the `}` closing a template's `${` (depth counted). */
  function code(inTemplate: boolean): void {
    let depth = 0;
    while (i < source.length) {
      const c = source[i]!;
      if (c === '\n') {
        newline();
        i++;
      } else if (c === '/' && source[i + 1] === '/') {
        while (i < source.length && source[i] !== '\n') i++;
      } else if (c === '/' && source[i + 1] === '*') {
        const end = source.indexOf('*/', i + 2);
        const stop = end === -1 ? source.length : end + 2;
        for (; i < stop; i++) if (source[i] === '\n') newline();
      } else if (c === '/' && /(^|[(,=:[!&|?{};>]|\breturn)\s*$/.test(source.slice(lineStart, i))) {
        // A regex literal (its quotes are not strings): skipped to its closing slash.
        let inClass = false;
        for (i++; i < source.length && source[i] !== '\n'; i++) {
          if (source[i] === '\\') i++;
          else if (source[i] === '[') inClass = true;
          else if (source[i] === ']') inClass = false;
          else if (source[i] === '/' && !inClass) break;
        }
        i++;
      } else if (c === "'" || c === '"') {
        const at = { line, before: source.slice(lineStart, i) };
        let value = '';
        for (i++; i < source.length && source[i] !== c && source[i] !== '\n'; i++) {
          if (source[i] === '\\') i++;
          value += source[i] ?? '';
        }
        i++;
        out.push({ value, ...at });
      } else if (c === '`') {
        const at = { line, before: source.slice(lineStart, i) };
        let value = '';
        for (i++; i < source.length && source[i] !== '`'; i++) {
          if (source[i] === '\\') {
            i++;
            value += source[i] ?? '';
          } else if (source[i] === '$' && source[i + 1] === '{') {
            i += 2;
            code(true);
            value += '${}';
          } else {
            if (source[i] === '\n') newline();
            value += source[i];
          }
        }
        i++;
        out.push({ value, ...at });
      } else if (inTemplate && c === '{') {
        depth++;
        i++;
      } else if (inTemplate && c === '}') {
        if (depth === 0) return;
        depth--;
        i++;
      } else i++;
    }
  }
  code(false);
  return out;
}

/**
 * Reasons written out instead of taken from the table: a literal equal to a table reason, a
 * literal naming the header in src/ (outside http/'s FAILURE_HEADER; tests may read the header by
 * name), or a new kebab-case reason in a `reason: '...'` or `[FAILURE_HEADER]: '...'` position.
 */
/** A metric's `reason` label (`metrics.relayRetries.inc({ reason: 'not-sent' })`) is not a failure reason. */
const METRIC_LABEL = /\.(inc|dec|set|observe|labels)\(\{\s*reason\s*:\s*$/;

function reasonLiterals(file: string, source: string, allowed: (l: Literal) => boolean): string[] {
  const found: string[] = [];
  for (const l of stringLiterals(source)) {
    if (allowed(l)) continue;
    const where = `${file}:${l.line}`;
    if (failureOf(l.value)) found.push(`${where}: '${l.value}'`);
    else if (file.startsWith('src') && /x-broker-failure/i.test(l.value)) found.push(`${where}: names the header (use FAILURE_HEADER)`);
    else if (/^[a-z]+(-[a-z]+)+$/.test(l.value) && /(\breason|FAILURE_HEADER\])\s*:\s*$/.test(l.before) && !METRIC_LABEL.test(l.before)) found.push(`${where}: a reason '${l.value}' missing from the table`);
  }
  return found;
}

/**
 * Strings equal to a reason that are not x-broker-failure reasons: the connection pool's
 * selection kinds (and the relay's outcome label for one), and the websocket close reason a
 * draining server sends its clients.
 */
function allowedElsewhere(file: string) {
  return (l: Literal): boolean =>
    /\bkind(: | === |, )$/.test(l.before) ||
    (file === 'src/server/relay.ts' && l.value === 'not-ready' && /return $/.test(l.before)) ||
    (l.value === 'server-draining' && /(drainAll\(|onServerGone\?\.\(this, |ws\.close\(4001, )$/.test(l.before)) ||
    (file === 'src/http/server-helpers.ts' && /FAILURE_HEADER = $/.test(l.before));
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

test('the source scan catches a reason written out, a header literal and a new reason outside the table', () => {
  const bad = [
    "sendFailure(res, { status: 503, reason: 'server-draining' });",
    "res.writeHead(502, { 'x-broker-failure': code });",
    "const f = { status: 418, reason: 'teapot-refused' };",
    "headers[FAILURE_HEADER] = 'x'; const h = { [FAILURE_HEADER]: 'brand-new' };",
    '// a comment may say no-connection or x-broker-failure freely',
    'const ok = FAILURES.NO_CONNECTION; const url = "http://x//y"; const kind = { kind: \'no-connection\' };',
    "if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) return sendFailure(res, { status: 502, reason: 'tunnel-closed' });",
  ].join('\n');
  const file = join('src', 'sample.ts');
  const found = reasonLiterals(file, bad, allowedElsewhere(file));
  assert.deepEqual(found, [
    `${file}:1: 'server-draining'`,
    `${file}:2: names the header (use FAILURE_HEADER)`,
    `${file}:3: a reason 'teapot-refused' missing from the table`,
    `${file}:4: a reason 'brand-new' missing from the table`,
    `${file}:7: 'tunnel-closed'`,
  ]);
});

test('no x-broker-failure reason is written out in src/ or test/ outside the table', () => {
  const tableFile = join('src', 'protocol', 'failures.ts');
  const thisFile = join('test', 'unit', 'protocol-failures.test.ts');
  const files = [...sources(join(REPO_ROOT, 'src')), ...sources(join(REPO_ROOT, 'test'))].map((p) => relative(REPO_ROOT, p));
  assert.ok(files.length > 100 && files.includes(tableFile), `scanned ${files.length} files`);
  const found = files.filter((f) => f !== tableFile && f !== thisFile).flatMap((f) => reasonLiterals(f, readFileSync(join(REPO_ROOT, f), 'utf8'), allowedElsewhere(f)));
  assert.deepEqual(found, [], `take these from src/protocol/failures.ts (FAILURES) instead:\n${found.join('\n')}`);
});
