// RES_BODY_URL_SUB (issue 15, item 4): the byte-level URL rewrite of JSON answers. Whole bodies
// give what snyk-broker's own replaceUrlPartialChunk gives; streamed bodies give the same bytes
// however they are cut into chunks (every cut point, and awkward random chunkings); content-length
// and compressed answers are handled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { gzipSync, brotliCompressSync } from 'node:zlib';
import { createBodyUrlRewriter, protocolFree, RES_BODY_URL_SUB_TARGET, UrlSubstitution, UrlSubstitutionTransform } from '../../src/client/res-body-url-sub.js';

const require = createRequire(import.meta.url);
const snyk = require('snyk-broker/dist/lib/hybrid-sdk/common/utils/replace-vars.js') as {
  replaceUrlPartialChunk(chunk: string, prev: string | null, config: Record<string, string>): { newChunk: string; partial?: string };
};

const TOKEN = '4b0c2e5e-8a37-4b7e-9d3a-0d5b3c1f2a90';
const NEXUS = 'https://nexus.example.com/repository';
const TARGET = `${RES_BODY_URL_SUB_TARGET}${TOKEN}`;

/** An npm packument as Nexus serves it: tarball URLs in every version, plus a non-ASCII description. */
function packument(versions = 12): string {
  const v: Record<string, unknown> = {};
  for (let i = 0; i < versions; i++) {
    v[`1.0.${i}`] = {
      name: 'left-pad',
      version: `1.0.${i}`,
      description: 'pads strings — “with” ünïcødé ✓ and 🚀',
      dist: { tarball: `${NEXUS}/npm-proxy/left-pad/-/left-pad-1.0.${i}.tgz`, shasum: 'a'.repeat(40) },
      homepage: 'https://github.com/left-pad/left-pad',
      repository: { url: `git+${NEXUS}/npm-proxy/left-pad.git` },
    };
  }
  return JSON.stringify({ name: 'left-pad', versions: v, 'dist-tags': { latest: `1.0.${versions - 1}` }, other: 'http://nexus.example.com/repository/x' });
}

function expected(text: string): string {
  return snyk.replaceUrlPartialChunk(text, null, { RES_BODY_URL_SUB: NEXUS, BROKER_TOKEN: TOKEN }).newChunk;
}

async function streamed(chunks: Buffer[], url = NEXUS): Promise<Buffer> {
  const t = new UrlSubstitutionTransform(new UrlSubstitution(url, TARGET));
  const out: Buffer[] = [];
  t.on('data', (c: Buffer) => out.push(c));
  const done = new Promise((resolve, reject) => t.on('end', resolve).on('error', reject));
  for (const c of chunks) t.write(c);
  t.end();
  await done;
  return Buffer.concat(out);
}

function cut(buf: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; off < buf.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(buf.subarray(off, off + n));
    off += n;
  }
  return out;
}

test('a whole body gives exactly what snyk-broker 5.22.14 gives (referee: its replaceUrlPartialChunk)', () => {
  const sub = new UrlSubstitution(NEXUS, TARGET);
  for (const text of [
    packument(),
    'Replace the "https://nexus.example.com/repository/get/some/artifact" url please.',
    `{"a":"${NEXUS}","b":"${NEXUS}/x","c":"http://nexus.example.com/repository/y"}`,
    'no url here at all',
    `${NEXUS}${NEXUS}`,
    `"git+https://nexus.example.com/repository/a.git"`,
  ]) {
    assert.equal(sub.rewrite(Buffer.from(text)).toString('utf8'), expected(text), text.slice(0, 80));
  }
  const out = sub.rewrite(Buffer.from(packument())).toString('utf8');
  assert.ok(!out.includes('nexus.example.com'), 'every Nexus URL is rewritten');
  assert.ok(out.includes(`"${TARGET}/npm-proxy/left-pad/-/left-pad-1.0.3.tgz"`));
  assert.ok(out.includes('"https://github.com/left-pad/left-pad"'), 'other URLs stay');
});

test('a URL cut at any byte between two chunks comes out the same as the whole body', async () => {
  const body = Buffer.from(`{"dist":{"tarball":"${NEXUS}/npm/left-pad/-/left-pad-1.0.0.tgz"},"d":"ü✓🚀","u":"http://nexus.example.com/repository/y"}`);
  const whole = new UrlSubstitution(NEXUS, TARGET).rewrite(body);
  assert.notDeepEqual(whole, body);
  for (let i = 1; i < body.length; i++) {
    const out = await streamed([body.subarray(0, i), body.subarray(i)]);
    assert.equal(out.toString('utf8'), whole.toString('utf8'), `cut at ${i}`);
  }
});

test('awkward chunkings (1 byte, 2-7 bytes, a chunk per 13 then 1) of a packument come out right', async () => {
  const body = Buffer.from(packument(30));
  const whole = new UrlSubstitution(NEXUS, TARGET).rewrite(body);
  assert.equal(whole.toString('utf8'), expected(body.toString('utf8')));
  for (const sizes of [[1], [2, 3, 5, 7], [13, 1], [37], [64, 1, 1]]) {
    assert.deepEqual(await streamed(cut(body, sizes)), whole, `sizes ${sizes}`);
  }
  // JSON stays valid and parseable: multi-byte characters are never split into garbage.
  const parsed = JSON.parse((await streamed(cut(body, [3]))).toString('utf8')) as { versions: Record<string, { dist: { tarball: string }; description: string }> };
  assert.equal(parsed.versions['1.0.7']!.dist.tarball, `${TARGET}/npm-proxy/left-pad/-/left-pad-1.0.7.tgz`);
  assert.equal(parsed.versions['1.0.7']!.description, 'pads strings — “with” ünïcødé ✓ and 🚀');
});

test('a body that ends with a URL, or with the start of one, is flushed whole', async () => {
  assert.equal((await streamed([Buffer.from('x https://nexus.exa'), Buffer.from('mple.com/repository')])).toString(), `x ${TARGET}`);
  assert.equal((await streamed([Buffer.from('x https://nexus.exa')])).toString(), 'x https://nexus.exa');
  assert.equal((await streamed([Buffer.from('ends with a scheme https')])).toString(), 'ends with a scheme https');
  assert.equal((await streamed([])).toString(), '');
});

test('held-back bytes stay small: only a partial URL and its scheme wait for the next chunk', () => {
  const sub = new UrlSubstitution(NEXUS, TARGET);
  assert.equal(sub.step(Buffer.from('{"a":"no url"}'), false).rest.length, 0);
  assert.equal(sub.step(Buffer.from('{"a":"https://nexus.ex'), false).rest.toString(), 'https://nexus.ex');
  assert.equal(sub.step(Buffer.from('{"a":"https'), false).rest.toString(), 'https');
  assert.ok(sub.step(Buffer.from('w'.repeat(10_000)), false).rest.length <= 64);
});

test('the configured URL: scheme, missing scheme and trailing slash', () => {
  assert.equal(protocolFree('https://nexus.example.com/repository/'), 'nexus.example.com/repository');
  assert.equal(protocolFree('nexus.example.com/repository'), 'nexus.example.com/repository');
  assert.equal(protocolFree('http://art.example/artifactory'), 'art.example/artifactory');
  const body = Buffer.from(`"${NEXUS}/npm/a.tgz"`);
  for (const url of [`${NEXUS}/`, 'nexus.example.com/repository', 'http://nexus.example.com/repository']) {
    assert.equal(new UrlSubstitution(url, TARGET).rewrite(body).toString(), `"${TARGET}/npm/a.tgz"`, url);
  }
  // Taken literally: a `.` in the URL is not "any character" (snyk-broker does not escape it).
  assert.equal(new UrlSubstitution(NEXUS, TARGET).rewrite(Buffer.from('"https://nexusXexample.com/repository/a"')).toString(), '"https://nexusXexample.com/repository/a"');
});

async function text(body: Buffer | Readable): Promise<string> {
  if (Buffer.isBuffer(body)) return body.toString('utf8');
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

test('rewriter: JSON answers only; a whole body gets its exact new content-length, a stream none', async () => {
  const r = createBodyUrlRewriter(NEXUS, TOKEN);
  assert.equal(r.applies({ 'content-type': 'application/json; charset=utf-8' }), true);
  assert.equal(r.applies({ 'content-type': 'application/vnd.npm.install-v1+json' }), true);
  assert.equal(r.applies({ 'content-type': 'application/octet-stream' }), false);
  assert.equal(r.applies({}), false);
  const body = Buffer.from(packument(3));
  const whole = r.rewrite({ 'content-type': 'application/json', 'content-length': String(body.length) }, body);
  assert.ok(Buffer.isBuffer(whole.body));
  assert.equal(whole.headers['content-length'], String((whole.body as Buffer).length));
  assert.notEqual(whole.headers['content-length'], String(body.length));
  assert.equal(await text(whole.body), expected(body.toString()));
  const stream = r.rewrite({ 'content-type': 'application/json', 'content-length': String(body.length) }, Readable.from(cut(body, [5])));
  assert.equal(stream.headers['content-length'], undefined);
  assert.equal(await text(stream.body), expected(body.toString()));
});

test('rewriter: gzip and br answers are decompressed, rewritten, and sent without content-encoding', async () => {
  const r = createBodyUrlRewriter(NEXUS, TOKEN);
  const body = Buffer.from(packument(4));
  for (const [encoding, packed] of [['gzip', gzipSync(body)], ['br', brotliCompressSync(body)]] as const) {
    for (const input of [packed, Readable.from(cut(packed, [7]))]) {
      const out = r.rewrite({ 'content-type': 'application/json', 'content-encoding': encoding, 'content-length': String(packed.length) }, input);
      assert.equal(out.headers['content-encoding'], undefined);
      assert.equal(out.headers['content-length'], undefined);
      assert.equal(await text(out.body), expected(body.toString()), encoding);
    }
  }
  // An encoding it cannot read passes untouched.
  const odd = r.rewrite({ 'content-type': 'application/json', 'content-encoding': 'zstd' }, Buffer.from('xx'));
  assert.equal(odd.headers['content-encoding'], 'zstd');
  assert.equal(await text(odd.body), 'xx');
});

test('rewriter: a failing origin stream fails the rewritten stream (no silent truncation)', async () => {
  const r = createBodyUrlRewriter(NEXUS, TOKEN);
  const source = new Readable({ read() {} });
  const out = r.rewrite({ 'content-type': 'application/json' }, source);
  source.push(Buffer.from('{"a":"https://nexus.example'));
  setImmediate(() => source.destroy(new Error('origin reset')));
  await assert.rejects(text(out.body), /origin reset/);
});
