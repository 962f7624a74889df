// splitTarget gives the origin and path `new URL` gives, for every target (its fast path only
// skips the parse where the parser would change nothing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitTarget } from '../../src/client/origin-egress.js';

function byUrl(target: string): { origin: string; path: string } | 'throws' {
  try {
    const url = new URL(target);
    return { origin: url.origin, path: `${url.pathname}${url.search}` };
  } catch {
    return 'throws';
  }
}

function bySplit(target: string): { origin: string; path: string } | 'throws' {
  try {
    return splitTarget(target);
  } catch {
    return 'throws';
  }
}

const ORIGINS = ['http://127.0.0.1:8080', 'https://GitHub.example.com', 'https://api.github.com:443', 'http://h:80', 'HTTP://Host', 'http://[::1]:3000', 'https://u:p@h', 'http://h\tx', 'http://a b', 'http://h:99999', 'https://h/api/v3', 'http://h?q', 'http://h#f', 'http://h\\x'];
const PATHS = [
  '/', '', '/small', '/repos/acme/app/contents/src%2Fmain.ts?ref=main', '/a/./b', '/a/../b', '/a/%2e%2E/b', '/a/.%2e', '/a/.', '/.github/x', '/a..b/c', '/x?', '/x??', '/x?a=1&b=2',
  '/a b', '/a"b', '/a<b>', '/a`b', '/a{b}', '/a\\b', '/a^b', '/a|b', "/a'b?c'd", '/a?b c', '/é', '/a%zz', '//double//slash', '/a;b=c:d@e', '/x#frag', '/x?y#frag', '/a\tb', '/a\nb', '?q', '/a/%2e?x=/../',
];

test('splitTarget agrees with new URL on origins and paths, odd ones included', () => {
  for (const o of ORIGINS) {
    for (const p of PATHS) {
      const target = o + p;
      assert.deepEqual(bySplit(target), byUrl(target), JSON.stringify(target));
      // Asked again: the remembered origin answers the same.
      assert.deepEqual(bySplit(target), byUrl(target), JSON.stringify(target));
    }
  }
});

test('splitTarget agrees with new URL on generated paths', () => {
  const chars = 'aZ09-._~!$&()*+,;=:@%/?#\\ "<>`{}^|\'\t[]é2eE.';
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 20_000; i++) {
    let p = '/';
    const n = Math.floor(next() * 12);
    for (let j = 0; j < n; j++) p += chars[Math.floor(next() * chars.length)];
    const target = `http://127.0.0.1:8080${p}`;
    assert.deepEqual(bySplit(target), byUrl(target), JSON.stringify(target));
  }
});
