import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createEgress } from '../../src/http/egress.js';
import { closeServer, listen } from '../../src/http/server-helpers.js';
import { silentLogger } from '../../src/observability/logger.js';
import { hashToken } from '../../src/protocol/index.js';
import { createPeerRouting, type PeerRoute } from '../../src/server/peer-routing.js';

const T = 'b9460892-5397-48f1-8697-488769ae3797';
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups) await c();
});

async function routingAgainst(doc: unknown, status = 200) {
  const seen: Array<{ url: string; secret: unknown }> = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url!, secret: req.headers['x-broker-internal-secret'] });
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(doc));
  });
  const port = await listen(server, 0, '127.0.0.1');
  const egress = await createEgress();
  cleanups.push(async () => {
    await closeServer(server);
    await egress.close();
  });
  const routing = createPeerRouting({ dispatcherUrl: `http://127.0.0.1:${port}`, internalSecret: 's3cret', selfServerId: 'a', refreshMs: 60_000 }, { egress, logger: silentLogger() });
  return { routing, seen };
}

test('the routing cache keeps live peers with a peer_url, never this server, weighted by their tunnels', async () => {
  const { routing, seen } = await routingAgainst({
    data: [
      {
        id: hashToken(T),
        attributes: {
          servers: [
            { server_id: 'a', peer_url: 'http://a:1', status: 'live', connections: [{ tunnels: 2 }] },
            { server_id: 'b', peer_url: 'http://b:1/', status: 'live', connections: [{ tunnels: 2 }, { tunnels: 1 }] },
            { server_id: 'c', peer_url: 'http://c:1', status: 'stopping', connections: [{ tunnels: 2 }] },
            { server_id: 'd', status: 'live', connections: [{ tunnels: 2 }] },
          ],
        },
      },
    ],
  });
  await routing.refresh();
  assert.deepEqual(routing.peersFor(T), [{ serverId: 'b', peerUrl: 'http://b:1', tunnels: 3 }]);
  assert.deepEqual(routing.peersFor('other-token'), []);
  // One refresh reads the routing lookup and the server list (for tunnels routed by server_id).
  assert.deepEqual(seen.sort((x, y) => x.url.localeCompare(y.url)), [
    { url: '/internal/brokerservers', secret: 's3cret' },
    { url: '/internal/connections', secret: 's3cret' },
  ]);
});

test('a failing lookup keeps the last known routes', async () => {
  const { routing } = await routingAgainst({ error: 'down' }, 500);
  await routing.refresh();
  assert.deepEqual(routing.peersFor(T), []);
});

test('targets are chosen in proportion to their tunnels (smooth weighted round robin), the rest follow as fallbacks with this server first', async () => {
  const { routing } = await routingAgainst({ data: [] });
  const b: PeerRoute = { serverId: 'b', peerUrl: 'http://b', tunnels: 2 };
  const c: PeerRoute = { serverId: 'c', peerUrl: 'http://c', tunnels: 4 };
  const firsts = new Map<string, number>();
  for (let i = 0; i < 80; i++) {
    const order = routing.order(T, 2, [b, c]);
    assert.equal(order.length, 3);
    const first = order[0] === 'local' ? 'local' : order[0]!.serverId;
    firsts.set(first, (firsts.get(first) ?? 0) + 1);
    const rest = order.slice(1);
    if (first !== 'local') assert.equal(rest[0], 'local', 'this server is the first fallback');
  }
  assert.deepEqual(Object.fromEntries(firsts), { local: 20, b: 20, c: 40 });
  assert.deepEqual(routing.order(T, 0, [b]), [b], 'no local tunnel: only peers');
});

test('a flood of unknown tokens costs one shared lookup, not one per request (misses refresh at most once a second)', async () => {
  const { routing, seen } = await routingAgainst({ data: [] });
  const unknown = Array.from({ length: 2000 }, (_, i) => `unknown-token-${i}`);
  const first = await Promise.all(unknown.map((t) => routing.peersForOnMiss(t)));
  assert.ok(first.every((peers) => peers.length === 0));
  // One refresh: one routing lookup and one server list, shared by all 2000 misses.
  assert.equal(seen.filter((s) => s.url === '/internal/connections').length, 1);
  assert.equal(seen.filter((s) => s.url === '/internal/brokerservers').length, 1);
  // A second flood shares at most one more refresh (none while the last is under a second old).
  await Promise.all(unknown.map((t) => routing.peersForOnMiss(`${t}-again`)));
  assert.ok(seen.filter((s) => s.url === '/internal/connections').length <= 2);
});

test('a token the dispatcher listed with tunnels anywhere (this server, a draining one) is "moving" for a while after they are gone; an unknown one is not', async () => {
  const mine = 'c0000000-0000-4000-8000-000000000001';
  const draining = 'c0000000-0000-4000-8000-000000000002';
  const doc: { data: unknown[] } = {
    data: [
      { id: hashToken(mine), attributes: { servers: [{ server_id: 'a', peer_url: 'http://a:1', status: 'live', connections: [{ tunnels: 2 }] }] } },
      { id: hashToken(draining), attributes: { servers: [{ server_id: 'c', peer_url: 'http://c:1', status: 'stopping', connections: [{ tunnels: 1 }] }] } },
    ],
  };
  const { routing } = await routingAgainst(doc);
  await routing.refresh();
  assert.deepEqual(routing.peersFor(draining), [], 'a draining server is no route');
  assert.equal(routing.tunnelsMoving(mine), true);
  assert.equal(routing.tunnelsMoving(draining), true);
  assert.equal(routing.tunnelsMoving(T), false, 'never listed');
  // The next lookup lists none (the draining server's clients are reconnecting): still moving.
  doc.data = [];
  await routing.refresh();
  assert.equal(routing.tunnelsMoving(draining), true);
});
