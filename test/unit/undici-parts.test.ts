import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import * as undici from 'undici';
import { Agent, Dispatcher, EnvHttpProxyAgent, errors, requestUrl } from '../../src/http/undici-parts.js';
import { closeServer, listen } from '../../src/http/server-helpers.js';

test("the egress stack's undici parts are the very classes undici's index exports", () => {
  assert.equal(Agent, undici.Agent);
  assert.equal(EnvHttpProxyAgent, undici.EnvHttpProxyAgent);
  assert.equal(Dispatcher, undici.Dispatcher);
  assert.equal(errors, undici.errors);
  assert.equal(typeof new Agent().request, 'function', 'request() is a method of every dispatcher');
});

test("requestUrl sends what undici's request(url, { dispatcher }) sends: the path with its query, GET by default, PUT with a body", async () => {
  const seen: Array<{ method?: string; url?: string; body: string }> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, body });
      res.end('ok');
    });
  });
  const port = await listen(server, 0, '127.0.0.1');
  const agent = new Agent();
  try {
    const base = `http://127.0.0.1:${port}`;
    for (const [url, options] of [
      [`${base}/a/b?x=1&y=%20`, {}],
      [new URL(`${base}/plain`), { method: 'DELETE' as const }],
      [`${base}/up`, { body: 'hello' }],
    ] as const) {
      const ours = await requestUrl(agent, url, options);
      assert.equal(await ours.body.text(), 'ok');
      const theirs = await undici.request(url, { ...options, dispatcher: agent });
      assert.equal(await theirs.body.text(), 'ok');
    }
    assert.deepEqual(seen.filter((_, i) => i % 2 === 0), seen.filter((_, i) => i % 2 === 1));
    assert.deepEqual(seen.map((s) => `${s.method} ${s.url}`), ['GET /a/b?x=1&y=%20', 'GET /a/b?x=1&y=%20', 'DELETE /plain', 'DELETE /plain', 'PUT /up', 'PUT /up']);
    await assert.rejects(requestUrl(agent, 'ftp://127.0.0.1/x', {}), (err: Error & { code?: string }) => err.code === 'UND_ERR_INVALID_ARG' && /must start with `http:` or `https:`/.test(err.message));
    await assert.rejects(requestUrl(agent, 'not a url', {}), (err: Error & { code?: string }) => err.code === 'ERR_INVALID_URL');
  } finally {
    await agent.close();
    await closeServer(server);
  }
});

test("no broker program loads undici's fetch, WebSocket or cache stores (its index)", () => {
  const dist = fileURLToPath(new URL('../../../dist/', import.meta.url));
  const script = `
    import { createRequire } from 'node:module';
    const r = createRequire(${JSON.stringify(dist)});
    for (const m of ['client/main.js', 'server/main.js', 'dispatcher/main.js']) await import(${JSON.stringify(dist)} + m);
    const loaded = Object.keys(r.cache).filter((k) => k.includes('/node_modules/undici/'));
    console.log(JSON.stringify({ loaded: loaded.length, index: loaded.filter((k) => k.endsWith('/undici/index.js') || k.includes('/undici/lib/web/') || k.includes('/undici/lib/cache/')) }));`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { loaded: number; index: string[] };
  assert.ok(out.loaded > 10, `undici's dispatcher modules are loaded (${out.loaded})`);
  assert.deepEqual(out.index, []);
});
