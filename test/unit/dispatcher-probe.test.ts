import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createHash } from 'node:crypto';
import { loadDispatcherConfig } from '../../src/config/dispatcher.js';
import { createDispatcher } from '../../src/dispatcher/dispatcher.js';
import { closeServer, listen } from '../../src/http/server-helpers.js';
import { waitFor } from '../support/wait.js';

const HASHED = createHash('sha256').update('probe-token').digest('hex');

async function healthServer(): Promise<{ url: string; server: Server; hits: () => number }> {
  let hits = 0;
  const server = createServer((req, res) => {
    if (req.url === '/healthcheck') hits++;
    res.writeHead(req.url === '/healthcheck' ? 200 : 404, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  const port = await listen(server, 0, '127.0.0.1');
  return { url: `http://127.0.0.1:${port}`, server, hits: () => hits };
}

describe('server health probes', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('a server that stops answering its probe leaves placement; it comes back when it answers again', async () => {
    const config = await loadDispatcherConfig({ PORT: '0', DISPATCHER_HOST: '127.0.0.1', SERVER_PROBE_INTERVAL_MS: '100', SERVER_PROBE_TIMEOUT_MS: '1000', SERVER_PROBE_FAILURES: '2' });
    const d = createDispatcher(config);
    await d.start();
    cleanups.push(() => d.stop('test'));
    const a = await healthServer();
    const b = await healthServer();
    cleanups.push(() => closeServer(a.server), () => closeServer(b.server));
    const register = (id: string, peer: string) =>
      fetch(`${d.url}/internal/brokerservers/${id}`, { method: 'POST', headers: { 'content-type': 'application/vnd.api+json' }, body: JSON.stringify({ data: { attributes: { peer_url: peer } } }) });
    assert.equal((await register('a', a.url)).status, 200);
    assert.equal((await register('b', b.url)).status, 200);
    await waitFor('both servers probed', () => a.hits() > 0 && b.hits() > 0);

    const status = async () => {
      const body = (await (await fetch(`${d.url}/internal/brokerservers?all=true`)).json()) as { data: Array<{ id: string; attributes: { status: string } }> };
      return Object.fromEntries(body.data.map((s) => [s.id, s.attributes.status]));
    };
    assert.deepEqual(await status(), { a: 'live', b: 'live' });

    // "Kill" b: its port stops answering.
    b.server.closeAllConnections();
    await closeServer(b.server);
    await waitFor('b to be taken out of placement', async () => (await status()).b === 'down', { timeoutMs: 20_000 });
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${d.url}/hidden/broker/${HASHED}/connections/c${i}`, { method: 'POST', body: '{}' });
      const body = (await res.json()) as { data: { attributes: { server_id: string } } };
      assert.equal(body.data.attributes.server_id, 'a');
    }

    // b comes back on the same address.
    const port = Number(new URL(b.url).port);
    const revived = createServer((_req, res) => {
      res.writeHead(200);
      res.end('{"ok":true}');
    });
    await listen(revived, port, '127.0.0.1');
    cleanups.push(() => closeServer(revived));
    await waitFor('b back in placement', async () => (await status()).b === 'live', { timeoutMs: 20_000 });
  });
});
