// RES_BODY_URL_SUB through the real snyk-broker 5.22.14 server: our client rewrites the package
// URLs of a Nexus-style packument that the origin sends in small pieces, and what the platform
// receives from Snyk's server is complete, valid JSON with a content-length that fits (exact for
// a small answer, none for a streamed one).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { ProcessGroup } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startSnykBroker } from '../support/snyk-broker.js';
import { waitFor } from '../support/wait.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';

const group = new ProcessGroup();
const token = randomUUID();
let origin: Server;
let originUrl = '';
let serverPort = 0;

before(async () => {
  origin = createServer(async (req, res) => {
    for await (const _ of req) void _;
    const n = Number(new URL(req.url!, 'http://x').searchParams.get('n') ?? 10);
    const versions = Object.fromEntries(Array.from({ length: n }, (_, i) => [`1.${i}.0`, { version: `1.${i}.0`, dist: { tarball: `${originUrl}/repository/npm-group/lib/-/lib-1.${i}.0.tgz` } }]));
    const body = Buffer.from(JSON.stringify({ name: 'lib', versions }));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
    for (let off = 0, i = 0; off < body.length; i++) {
      const size = 1 + (i % 9);
      res.write(body.subarray(off, off + size));
      off += size;
      if (i % 50 === 0) await sleep(1);
    }
    res.end();
  });
  originUrl = `http://127.0.0.1:${await listen(origin, 0, '127.0.0.1')}`;
  const dir = await mkdtemp(join(tmpdir(), 'res-body-url-sub-'));
  const serverAccept = join(dir, 'server-accept.json');
  await writeFile(serverAccept, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [{ method: 'any', path: '/*', origin: originUrl }] }));
  const clientAccept = join(dir, 'client-accept.json');
  await writeFile(clientAccept, JSON.stringify({ private: [{ method: 'GET', path: '/repository/*', origin: '${BASE_NEXUS_URL}' }], public: [] }));
  serverPort = await freePort();
  await startSnykBroker(group, 'snyk-server', 'server', { PORT: String(serverPort), ACCEPT: serverAccept });
  await waitFor('snyk-broker server health', async () => {
    const r = await request(`http://127.0.0.1:${serverPort}/healthcheck`).catch(() => undefined);
    await r?.body.dump();
    return r?.statusCode === 200;
  }, { timeoutMs: 60_000 });
  group.broker('client', 'client', {
    BROKER_TOKEN: token,
    BROKER_SERVER_URL: `http://127.0.0.1:${serverPort}`,
    PORT: String(await freePort()),
    ACCEPT: clientAccept,
    BASE_NEXUS_URL: originUrl,
    RES_BODY_URL_SUB: `${originUrl}/repository`,
    PREFLIGHT_CHECKS_ENABLED: 'false',
  });
  await waitFor('server sees the client', async () => {
    const r = await request(`http://127.0.0.1:${serverPort}/connection-status/${token}`).catch(() => undefined);
    await r?.body.dump();
    return r?.statusCode === 200;
  }, { timeoutMs: 60_000 });
});

after(async () => {
  await group.stopAll();
  await closeServer(origin);
});

for (const n of [10, 1500]) {
  test(`a packument with ${n} versions reaches the platform with every tarball URL through the broker`, async () => {
    const res = await request(`http://127.0.0.1:${serverPort}/broker/${token}/repository/npm-group/lib?n=${n}`);
    const text = await res.body.text();
    assert.equal(res.statusCode, 200);
    const length = res.headers['content-length'];
    if (length !== undefined) assert.equal(Number(length), Buffer.byteLength(text), 'content-length does not fit the rewritten body');
    if (n > 1000) assert.ok(Buffer.byteLength(text) > 64 * 1024, 'the large answer is streamed');
    const doc = JSON.parse(text) as { versions: Record<string, { dist: { tarball: string } }> };
    assert.equal(Object.keys(doc.versions).length, n);
    for (const [v, entry] of Object.entries(doc.versions)) {
      assert.equal(entry.dist.tarball, `http://internal-broker-server-next/broker/${token}/npm-group/lib/-/lib-${v}.tgz`);
    }
  });
}
