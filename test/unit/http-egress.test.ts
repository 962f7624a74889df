import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer, type Server } from 'node:http';
import { createEgress } from '../../src/http/egress.js';
import { classifyEgressError, EgressError } from '../../src/http/errors.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';
import { makeTestPki, type TestPki } from '../support/tls.js';
import { startProxy, type TestProxy } from '../support/proxy.js';
import { freePort } from '../support/ports.js';

let pki: TestPki;
let tlsOrigin: HttpsServer;
let plainOrigin: Server;
let tlsUrl: string;
let plainUrl: string;
let proxy: TestProxy;

before(async () => {
  pki = await makeTestPki();
  const handler = (_req: unknown, res: import('node:http').ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  };
  tlsOrigin = createHttpsServer({ cert: pki.cert, key: pki.key }, handler);
  plainOrigin = createServer(handler);
  tlsUrl = `https://127.0.0.1:${await listen(tlsOrigin as unknown as Server, 0, '127.0.0.1')}`;
  plainUrl = `http://127.0.0.1:${await listen(plainOrigin, 0, '127.0.0.1')}`;
  proxy = await startProxy();
});

after(async () => {
  await closeServer(tlsOrigin as unknown as Server);
  await closeServer(plainOrigin);
  await proxy.close();
});

test('a custom CA file makes a private certificate trusted; without it the call fails with a typed error', async () => {
  const trusted = await createEgress({ caFiles: [pki.caFile] });
  const untrusted = await createEgress();
  try {
    const res = await trusted.request(`${tlsUrl}/x`);
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), 'ok');
    const err = await untrusted.request(`${tlsUrl}/x`).then(() => undefined, (e: unknown) => classifyEgressError(e));
    assert.ok(err instanceof EgressError);
    assert.equal(err.code, 'DOWNSTREAM_ERROR');
    assert.match(err.message, /certificate/i);
  } finally {
    await trusted.close();
    await untrusted.close();
  }
});

test('HTTP and HTTPS go through the configured proxy (CONNECT for TLS); NO_PROXY bypasses it', async () => {
  const viaProxy = await createEgress({ httpProxy: proxy.url, httpsProxy: proxy.url, caFiles: [pki.caFile], noProxy: '' });
  const bypass = await createEgress({ httpProxy: proxy.url, httpsProxy: proxy.url, noProxy: '127.0.0.1' });
  try {
    proxy.seen.length = 0;
    assert.equal((await viaProxy.request(`${plainUrl}/plain`)).statusCode, 200);
    assert.equal((await viaProxy.request(`${tlsUrl}/tls`)).statusCode, 200);
    assert.ok(proxy.seen.some((s) => s.startsWith('GET http://127.0.0.1') && s.endsWith('/plain')), proxy.seen.join());
    assert.ok(proxy.seen.some((s) => s.startsWith('CONNECT 127.0.0.1:')), proxy.seen.join());
    const before = proxy.seen.length;
    assert.equal((await bypass.request(`${plainUrl}/direct`)).statusCode, 200);
    assert.equal(proxy.seen.length, before, 'NO_PROXY host did not use the proxy');
  } finally {
    await viaProxy.close();
    await bypass.close();
  }
});

test('refused connections classify as unreachable, timeouts as timeout', async () => {
  const egress = await createEgress({ headersTimeoutMs: 200 });
  const silent = createServer(() => {
    /* never answers */
  });
  const silentPort = await listen(silent, 0, '127.0.0.1');
  try {
    const dead = await freePort();
    const refused = await egress.request(`http://127.0.0.1:${dead}/`).then(() => undefined, classifyEgressError);
    assert.equal(refused?.code, 'DOWNSTREAM_UNREACHABLE');
    assert.equal(refused?.status, 502);
    const slow = await egress.request(`http://127.0.0.1:${silentPort}/`).then(() => undefined, classifyEgressError);
    assert.equal(slow?.code, 'DOWNSTREAM_TIMEOUT');
    assert.equal(slow?.status, 504);
  } finally {
    silent.closeAllConnections();
    await closeServer(silent);
    await egress.close();
  }
});
