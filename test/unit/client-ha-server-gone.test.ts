// When the allocated server dies (kill -9: connection refused from then on), the HA client asks
// the dispatcher again after two failed reconnects per tunnel, and does not mistake the dead
// server's direct URL for one this network cannot reach (no switch to BROKER_SERVER_URL).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { FakeBrokerServer } from '../support/fake-broker-server.js';
import { startTestClient } from '../support/client-harness.js';
import { waitFor } from '../support/wait.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';

test('a killed server: re-allocation after 2 failed reconnects, straight to the new server', async (t) => {
  const first = await new FakeBrokerServer().start();
  const second = await new FakeBrokerServer().start();
  // BROKER_SERVER_URL (the shared Service URL): must not be used while direct URLs work.
  const shared = await new FakeBrokerServer().start();
  let current = { id: '1', url: first.url };
  let posts = 0;
  const dispatcher = createServer((req, res) => {
    req.resume();
    if (req.method !== 'POST') {
      res.writeHead(204);
      return res.end();
    }
    posts++;
    res.writeHead(200, { 'content-type': 'application/vnd.api+json' });
    res.end(JSON.stringify({ data: { attributes: { server_id: current.id, server_url: current.url } } }));
  });
  const port = await listen(dispatcher, 0, '127.0.0.1');
  t.after(async () => {
    await Promise.all([first.stop(), second.stop(), shared.stop()]);
    await closeServer(dispatcher);
  });
  const tc = await startTestClient(
    { BROKER_TOKEN: randomUUID(), BROKER_SERVER_URL: shared.url, BROKER_HA_MODE_ENABLED: 'true', BROKER_DISPATCHER_BASE_URL: `http://127.0.0.1:${port}` },
    { private: [], public: [] },
  );
  t.after(() => tc.stop());
  await waitFor('two tunnels on the first server', () => first.open().length === 2, { timeoutMs: 30_000 });
  assert.equal(posts, 1);

  const linesBefore = tc.logs().length;
  current = { id: '2', url: second.url };
  await first.stop(); // like kill -9: tunnels drop, later connects are refused
  await waitFor('two tunnels on the second server', () => second.open().length === 2, { timeoutMs: 30_000 });

  const after = tc.logs().slice(linesBefore);
  const connects = after.filter((e) => e.msg === 'broker client is connecting to broker server');
  for (const role of ['primary', 'secondary']) {
    const toDead = connects.filter((e) => e.role === role && String(e.url).startsWith(first.url));
    // At most 2 failed reconnects before asking again (the other tunnel may have asked first).
    assert.ok(toDead.length >= 1 && toDead.length <= 2, `${role}: ${toDead.length} reconnects to the dead server`);
  }
  assert.equal(shared.connections.length, 0, 'a dead server is not "unreachable from here": no fallback to BROKER_SERVER_URL');
  assert.ok(!after.some((e) => /not reachable from here/.test(String(e.msg))));
  assert.ok(after.some((e) => e.msg === 'asking the dispatcher for a new server' && e.reason === 'unreachable'));
  assert.equal(posts, 2, 'one new allocation shared by both tunnels');
});
