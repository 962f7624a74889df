import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RuleSet, isSafePath, type AcceptRule } from '../../src/filters/index.js';

const RULES: AcceptRule[] = [
  { method: 'GET', path: '/repos/:owner/:repo/contents/*', origin: 'https://ghe.example' },
  { method: 'GET', path: '/api/v3/user', origin: 'https://ghe.example' },
];
const rules = new RuleSet(RULES);

/** `null`: must be refused. A string: may be allowed, and then targets exactly that URL. */
const TRICKS: Array<[method: string, url: string, allowedTarget: string | null]> = [
  ['GET', '/repos/o/r/contents/../../../admin', null],
  ['GET', '/repos/o/r/contents/%2e%2e/%2e%2e/admin', null],
  ['GET', '/repos/o/r/contents/%2E%2e/x', null],
  ['GET', '/repos/o/r/contents/.%2e/x', null],
  ['GET', '/repos/o/r/contents/%252e%252e/x', null],
  ['GET', '/repos/o/r/contents/%25252e%25252e/x', null],
  ['GET', '/repos/o/r/contents/..%2f..%2fadmin', null],
  ['GET', '/repos/o/r/contents/..%2F..%2Fadmin', null],
  ['GET', '/repos/o%2f..%2f..%2fadmin/r/contents/x', null],
  ['GET', '/repos/o/r/contents/a%2fb', 'https://ghe.example/repos/o/r/contents/a%2fb'],
  ['GET', '/repos/o/r/contents/a%2Fb', 'https://ghe.example/repos/o/r/contents/a%2Fb'],
  ['GET', '/repos/o/r/contents/..\\..\\admin', null],
  ['GET', '/repos/o/r/contents/..%5c..%5cadmin', null],
  ['GET', '/repos/o/r/contents/..%5C..%5Cadmin', null],
  ['GET', '/repos//r/contents/x', null],
  ['GET', '//repos/o/r/contents/x', null],
  ['GET', '/api/v3//user', null],
  ['GET', '/repos/o/r/contents//etc/passwd', 'https://ghe.example/repos/o/r/contents//etc/passwd'],
  ['GET', '/repos/o/r/contents/./x', null],
  ['GET', '/api/v3/./user', null],
  ['GET', '/api/v3/user;/../admin', null],
  ['GET', '/repos/o/r/contents/..;/..;/admin', null],
  ['GET', '/api/v3/user;x', null],
  ['GET', '/api/v3/user?../../admin', 'https://ghe.example/api/v3/user?../../admin'],
  ['GET', '/api/v3/user%3f/../admin', null],
  ['GET', '/api/v3/user%3F', null],
  ['GET', '/api/v3/user#/../../admin', 'https://ghe.example/api/v3/user'],
  ['GET', '/api/v3/user%23/../admin', null],
  ['GET', '/api/v3/user%00', null],
  ['GET', '/repos/o/r/contents/x%00.json', null],
  ['GET', '/repos/o/r/contents/\uff0e\uff0e/admin', null],
  ['GET', '/repos/o/r/contents/%ef%bc%8e%ef%bc%8e/admin', null],
  ['GET', '/repos/o/r/contents/\u2025/admin', null],
  ['GET', '/repos/o/r/contents/..\uff0fadmin', null],
  ['GET', '/repos/o/r/contents/%c0%ae%c0%ae/admin', null],
  ['GET', '/repos/o/r/contents/%e0%80%ae%e0%80%ae/admin', null],
  ['GET', '/repos/o/r/contents/.\n./.\n./.\n./admin', null],
  ['GET', '/repos/o/r/contents/.\t./x', null],
  ['GET', '/repos/o/r/contents/.\r./x', null],
  ['GET', '/repos/o/r/contents/%0a', null],
  ['GET', '/repos/o/r/contents/.../x', null],
  ['GET', '/repos/o/r/contents/.. /x', null],
  ['get', '/api/v3/user', 'https://ghe.example/api/v3/user'],
  ['GeT', '/api/v3/user', 'https://ghe.example/api/v3/user'],
  ['POST', '/api/v3/user', null],
  ['DELETE', '/repos/o/r/contents/x', null],
  ['GET', '/API/V3/USER', 'https://ghe.example/API/V3/USER'],
  ['GET', 'http://evil/api/v3/user', null],
  ['GET', 'https://evil.com/repos/o/r/contents/x', null],
  ['GET', '@evil.com/api/v3/user', null],
  ['GET', '//evil.com/api/v3/user', null],
  ['GET', '//evil.com/repos/o/r/contents/x', null],
  ['GET', '/api/v3/user@evil.com', null],
  ['GET', '/repos/o/r/contents/x@evil.com', 'https://ghe.example/repos/o/r/contents/x@evil.com'],
  ['GET', 'api/v3/user', null],
  ['GET', '', null],
  ['GET', '/api/v3/%75ser', null],
  ['GET', '/api/v3/user ', null],
  ['GET', '/repos/o/r/contents/x ', null],
  ['GET', '/repos/o/r/contents/x%20y', 'https://ghe.example/repos/o/r/contents/x%20y'],
];

test(`accept rules cannot be bypassed by URL tricks (${TRICKS.length} cases): each is refused or targets exactly the harmless URL`, () => {
  let refused = 0;
  for (const [method, url, expected] of TRICKS) {
    const result = rules.match({ method, url, headers: {} });
    const label = `${method} ${JSON.stringify(url)}`;
    if (expected === null) {
      assert.equal(result.allowed, false, `${label} must be refused`);
      refused++;
    } else {
      assert.ok(result.allowed, `${label} is harmless and allowed`);
      assert.equal(result.targetUrl, expected, label);
      // The URL an origin sees stays on the origin's host with the same path.
      const target = new URL(expected);
      assert.equal(target.host, 'ghe.example', label);
    }
  }
  assert.ok(refused > 40);
});

test('regression: tab/CR/LF inside a segment (the URL parser drops them: ".\\n." left as "..") is refused', () => {
  // fuzz-accept, minimised: GET /repos/o/r/contents/.\n./.\n./.\n./.\n./admin was allowed and
  // new URL() turned the target into https://origin/admin.
  const url = '/repos/o/r/contents/.\n./.\n./.\n./.\n./admin';
  assert.equal(new URL(`https://ghe.example${url}`).pathname, '/admin');
  assert.equal(isSafePath(url), false);
  assert.equal(isSafePath('/a/..;/b'), false);
  assert.equal(isSafePath('/a/%25252e%25252e/b'), false);
  assert.equal(isSafePath('/a/\u2025/b'), false);
  // Ordinary paths stay allowed.
  for (const ok of ['/api/v4/projects/group%2Fproject', '/a/.github/workflows/ci.yml', '/a/b.c/d', '/a/100%25.txt', '/a/x%20y', '/a/b?q=x y']) assert.equal(isSafePath(ok), true, ok);
});
