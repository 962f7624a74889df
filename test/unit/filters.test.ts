import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RuleSet, FilterError, isSafePath, loadAcceptFile, parseAcceptJson, compilePathPattern, type AcceptRule } from '../../src/filters/index.js';

const GET = (url: string, headers: Record<string, string> = {}) => ({ method: 'GET', url, headers });

test('path patterns: :param is one segment, * spans segments, trailing slash tolerated, case-insensitive', () => {
  const p = compilePathPattern('/repos/:owner/:repo/contents/*');
  assert.ok(p.test('/repos/acme/app/contents/src/index.ts'));
  assert.ok(p.test('/REPOS/acme/app/contents/x'));
  assert.ok(!p.test('/repos/acme/contents/x/y/z/'.replace('/contents', '')));
  assert.ok(!p.test('/repos/acme'));
  assert.ok(compilePathPattern('/user').test('/user/'));
  assert.ok(!compilePathPattern('/user').test('/user/x'));
  assert.ok(compilePathPattern('/api/v4/projects/:project').test('/api/v4/projects/group%2Fproject'));
  const optional = compilePathPattern('/a/:b?');
  assert.ok(optional.test('/a') && optional.test('/a/x') && !optional.test('/a/x/y'));
  assert.ok(compilePathPattern('/file.json').test('/file.json') && !compilePathPattern('/file.json').test('/fileXjson'));
});

test('first matching rule wins; method must match or be any; unmatched requests are blocked with a reason', () => {
  const rules: AcceptRule[] = [
    { method: 'GET', path: '/a/*', origin: 'http://one' },
    { method: 'any', path: '/a/*', origin: 'http://two' },
  ];
  const set = new RuleSet(rules);
  const get = set.match(GET('/a/x'));
  assert.ok(get.allowed && get.targetUrl === 'http://one/a/x');
  const post = set.match({ method: 'POST', url: '/a/x', headers: {} });
  assert.ok(post.allowed && post.targetUrl === 'http://two/a/x');
  const blocked = set.match(GET('/b'));
  assert.ok(!blocked.allowed && /does not match any accept rule/.test(blocked.reason));
  // default method is GET
  assert.ok(!new RuleSet([{ path: '/x' }]).match({ method: 'DELETE', url: '/x', headers: {} }).allowed);
});

test('path traversal is blocked raw, percent-encoded, double-encoded and behind encoded slashes', () => {
  for (const bad of ['/a/../etc', '/a/%2e%2e/etc', '/a/%2E%2E/x', '/a/.%2e/x', '/a/..%2f..%2fadmin', '/a/%252e%252e/x', '/a/./b', '/a\\..\\b', 'relative', '/a/%zz']) {
    assert.equal(isSafePath(bad), false, bad);
  }
  for (const ok of ['/a/b', '/a/b?x=../y', '/api/v4/projects/group%2Fproject/files', '/a/..b/c', '/a/b.json']) {
    assert.equal(isSafePath(ok), true, ok);
  }
  const set = new RuleSet([{ method: 'any', path: '/*', origin: 'http://o' }]);
  const r = set.match(GET('/repos/%2e%2e/%2e%2e/admin'));
  assert.ok(!r.allowed && /path traversal/.test(r.reason));
});

test('${VAR} substitution in origin and auth; unset variables become empty and are reported', () => {
  const rules: AcceptRule[] = [
    { method: 'GET', path: '/bearer/*', origin: '${ORIGIN}', auth: { scheme: 'bearer', token: '${TOK}' } },
    { method: 'GET', path: '/basic/*', origin: '${ORIGIN}', auth: { scheme: 'basic', username: 'u', password: '${PASS}' } },
    { method: 'GET', path: '/url-token/*', origin: 'https://${TOK}@ghe.example.com/api/v3' },
    { method: 'GET', path: '/url-basic/*', origin: 'https://bob:${PASS}@gitlab.example.com' },
    { method: 'GET', path: '/noscheme/*', origin: '${HOST}' },
  ];
  const set = new RuleSet(rules, { ORIGIN: 'http://127.0.0.1:9', TOK: 'secret-token', PASS: 'p@ss', HOST: 'ghe.internal' });
  const b = set.match(GET('/bearer/x'));
  assert.ok(b.allowed && b.targetUrl === 'http://127.0.0.1:9/bearer/x' && b.authorization === 'Bearer secret-token');
  const basic = set.match(GET('/basic/x'));
  assert.ok(basic.allowed && basic.authorization === `Basic ${Buffer.from('u:p@ss').toString('base64')}`);
  const t = set.match(GET('/url-token/repos'));
  assert.ok(t.allowed && t.targetUrl === 'https://ghe.example.com/api/v3/url-token/repos' && t.authorization === 'token secret-token');
  const ub = set.match(GET('/url-basic/x'));
  assert.ok(ub.allowed && !ub.targetUrl!.includes('bob') && ub.authorization === `Basic ${Buffer.from('bob:p@ss').toString('base64')}`);
  const ns = set.match(GET('/noscheme/x'));
  assert.ok(ns.allowed && ns.targetUrl === 'https://ghe.internal/noscheme/x');
  // Basic credentials also in base64 (a logged Authorization header would reveal the password).
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  assert.deepEqual(new Set(set.secrets()), new Set(['http://127.0.0.1:9', 'secret-token', 'p@ss', 'ghe.internal', b64('u:p@ss'), b64('bob:p@ss')]));
  // snyk-broker's semantics: an unset ${VAR} is '' (no refusal at start); the unset ones are counted per rule.
  const partial = new RuleSet(rules, { ORIGIN: 'http://127.0.0.1:9' });
  assert.deepEqual(partial.unsetVariables().sort((a, b) => a.name.localeCompare(b.name)), [
    { name: 'HOST', rules: 1 },
    { name: 'PASS', rules: 2 },
    { name: 'TOK', rules: 2 },
  ]);
  const empty = partial.match(GET('/bearer/x'));
  assert.ok(empty.allowed && empty.targetUrl === 'http://127.0.0.1:9/bearer/x' && empty.authorization === undefined);
  const noHost = partial.match(GET('/noscheme/x'));
  assert.ok(noHost.allowed && noHost.targetUrl === undefined);
  assert.deepEqual(noHost.allowed && noHost.unsetOriginVariables, ['HOST']);
  // An origin that is no URL even with its variables set is still refused at load.
  assert.throws(() => new RuleSet([{ path: '/x', origin: 'http://a b/${HOST}' }], { HOST: 'h' }), (e: unknown) => e instanceof FilterError && e.code === 'ACCEPT_INVALID');
});

test('credential pools rotate per request', () => {
  const set = new RuleSet([{ path: '/x', origin: 'http://o', auth: { scheme: 'token', token: '${GITHUB_TOKEN}' } }], { GITHUB_TOKEN_POOL: 'aaaaaa1,aaaaaa2' });
  const seen = [1, 2, 3].map(() => {
    const r = set.match(GET('/x'));
    return r.allowed ? r.authorization : undefined;
  });
  assert.deepEqual(seen, ['token aaaaaa1', 'token aaaaaa2', 'token aaaaaa1']);
});

test('valid checks: body values are compared (not just present), regexes, query globs, exact headers', () => {
  const set = new RuleSet([
    { method: 'POST', path: '/guarded', origin: 'http://o', valid: [{ path: 'kind', value: 'allowed' }] },
    { method: 'POST', path: '/commits', origin: 'http://o', valid: [{ path: 'commits.*.added.*', value: 'package.json' }] },
    { method: 'POST', path: '/re', origin: 'http://o', valid: [{ path: 'ref', regex: '^refs/heads/' }] },
    { method: 'GET', path: '/q', origin: 'http://o', valid: [{ queryParam: 'path', values: ['*.json', '**/pom.xml'] }] },
    { method: 'GET', path: '/h', origin: 'http://o', valid: [{ header: 'x-event', values: ['push'] }] },
  ]);
  const post = (url: string, body: unknown) => set.match({ method: 'POST', url, headers: {}, body: Buffer.from(JSON.stringify(body)) });
  assert.ok(post('/guarded', { kind: 'allowed' }).allowed);
  assert.ok(!post('/guarded', { kind: 'forbidden' }).allowed, 'the value is compared, unlike the real client');
  assert.ok(!set.match({ method: 'POST', url: '/guarded', headers: {}, body: 'not json' }).allowed);
  assert.ok(!set.match({ method: 'POST', url: '/guarded', headers: {} }).allowed);
  assert.ok(post('/commits', { commits: [{ added: ['a'] }, { added: ['package.json'] }] }).allowed);
  assert.ok(!post('/commits', { commits: [{ added: ['a'] }] }).allowed);
  assert.ok(post('/re', { ref: 'refs/heads/main' }).allowed && !post('/re', { ref: 'refs/tags/v1' }).allowed);
  assert.ok(set.match(GET('/q?path=package.json')).allowed);
  assert.ok(set.match(GET('/q?path=a/b/pom.xml')).allowed);
  assert.ok(!set.match(GET('/q?path=dir/package.json')).allowed, '* does not cross /');
  assert.ok(!set.match(GET('/q')).allowed);
  assert.ok(set.match(GET('/h', { 'x-event': 'push' })).allowed && !set.match(GET('/h', { 'x-event': 'pull' })).allowed);
  assert.equal(set.needsBody('POST', '/guarded'), true);
  assert.equal(set.needsBody('GET', '/q?x'), false);
});

test('accept files: shape errors name the file and the rule; unreadable files are typed', async () => {
  assert.throws(() => parseAcceptJson('{', 'a.json'), (e: unknown) => e instanceof FilterError && e.code === 'ACCEPT_INVALID' && e.message.startsWith('a.json is not valid JSON'));
  assert.throws(() => parseAcceptJson('{"private":{}}', 'a.json'), /"private" must be an array/);
  assert.throws(() => parseAcceptJson('{"private":[{"path":7}]}', 'a.json'), /private\[0\]\.path/);
  // As snyk-broker: a path without its leading '/' gets one (Azure Repos' template), a missing one is '/'.
  const lenient = parseAcceptJson('{"private":[{"path":"_apis/git/repositories"},{"method":"GET"}]}', 'a.json');
  assert.deepEqual(lenient.private.map((r) => r.path), ['/_apis/git/repositories', '/']);
  assert.throws(() => parseAcceptJson('{"public":[{"path":"/x","method":"FETCH"}]}', 'a.json'), /public\[0\]\.method/);
  assert.throws(() => parseAcceptJson('{"public":[{"path":"/x","valid":[{"path":"a","regex":"("}]}]}', 'a.json'), /regex/);
  const dir = await mkdtemp(join(tmpdir(), 'accept-'));
  const file = join(dir, 'accept.json');
  await writeFile(file, JSON.stringify({ private: [{ method: 'GET', path: '/*', origin: 'http://o' }], public: [] }));
  assert.equal((await loadAcceptFile(file)).private.length, 1);
  await assert.rejects(loadAcceptFile(join(dir, 'missing.json')), (e: unknown) => e instanceof FilterError && e.code === 'ACCEPT_UNREADABLE' && /ENOENT/.test(e.message));
});

test('a rule origin that is not a URL, with any value its variables can take, is refused when the rules are compiled (never at request time)', () => {
  const rule = (origin: string): AcceptRule[] => [{ method: 'GET', path: '/*', origin }];
  const refused = (origin: string, vars: Record<string, string>) => {
    try {
      new RuleSet(rule(origin), vars, 'ACCEPT file a.json (private rules)');
    } catch (err) {
      assert.ok(err instanceof FilterError);
      assert.equal(err.code, 'ACCEPT_INVALID');
      return err.message;
    }
    assert.fail(`origin ${origin} with ${JSON.stringify(vars)} was accepted`);
  };
  assert.match(refused('http://not a host', {}), /a\.json \(private rules\)\[0\]\.origin "http:\/\/not a host" is not a URL/);
  // The second pool value is bad: found although requests would reach it only every other time.
  const message = refused('https://${GHE}', { GHE_POOL: 'ghe.example.com, bad host s3cret' });
  assert.match(message, /\[0\]\.origin "https:\/\/\$\{GHE\}" \(with its variables filled in\) is not a URL/);
  assert.ok(!message.includes('s3cret'), 'the variable value is not shown');
  // Good origins, with and without scheme, credentials and pools, still compile; compiling does not rotate a pool.
  const set = new RuleSet(rule('https://${U}:${P}@${GHE}/api'), { U: 'u', P: 'p', GHE_POOL: 'a.example,b.example' });
  const targets = [1, 2].map(() => {
    const r = set.match({ method: 'GET', url: '/x', headers: {} });
    return r.allowed ? r.targetUrl : r.reason;
  });
  assert.deepEqual(targets, ['https://a.example/api/x', 'https://b.example/api/x']);
  new RuleSet(rule('ghe.example.com'), {});
});
