// A server whose only client dies mid-request falls back to a peer's tunnels even when its
// routing cache is older than that peer's client: it looks the token up again before giving up.
// (Found by the fault suite: a GET failed 502 "no peer holds a tunnel of this token" while
// another server held two live tunnels, because the cache predated them by < refresh interval.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { hashToken } from '../../src/protocol/index.js';
import { ProcessGroup } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startPeerServers } from '../support/peer-servers.js';
import { waitFor } from '../support/wait.js';
import { startOrigin, type Origin } from '../support/origin.js';

const SECRET = 'fallback-refresh-secret';
const group = new ProcessGroup();
let origin: Origin | undefined;
after(async () => {
  await group.stopAll();
  await origin?.close();
});

/** Servers a and b whose periodic routing refresh never runs during a test; client x on a, then client y on b after both loaded their cache. */
async function pairWithStaleCache() {
  const token = randomUUID();
  origin ??= await startOrigin();
  const dir = await mkdtemp(join(tmpdir(), 'peer-fallback-'));
  const accept = join(dir, 'accept.json');
  await writeFile(accept, JSON.stringify({ private: [{ method: 'GET', path: '/*', origin: '${ORIGIN_URL}' }], public: [] }));
  // Only a lookup of the server's own (on a miss) can find y's client on b.
  const { dispatcherUrl, ports, servers } = await startPeerServers(group, ['a', 'b'], { internalSecret: SECRET, serverEnv: { BROKER_SERVER_ROUTING_REFRESH_MS: '600000' } });

  const tunnelsOn = async (id: 'a' | 'b') => {
    const r = await request(`${dispatcherUrl}/internal/tokens/${hashToken(token)}/connections`, { headers: { 'x-broker-internal-secret': SECRET } });
    const doc = (await r.body.json()) as { data?: { attributes?: { servers?: Array<{ server_id: string; connections: Array<{ tunnels: number }> }> } } };
    const s = doc.data?.attributes?.servers?.find((x) => x.server_id === id);
    return s ? s.connections.reduce((n, c) => n + c.tunnels, 0) : 0;
  };
  const startClient = async (name: string, serverPort: number) =>
    group.broker(name, 'client', {
      BROKER_TOKEN: token,
      BROKER_SERVER_URL: `http://127.0.0.1:${serverPort}`,
      PORT: String(await freePort()),
      ACCEPT: accept,
      PREFLIGHT_CHECKS_ENABLED: 'false',
      ORIGIN_URL: origin!.url,
    });
  const x = await startClient(`client-x-${token.slice(0, 4)}`, ports.a);
  await waitFor('client x: 2 tunnels on a', async () => (await tunnelsOn('a')) === 2, { timeoutMs: 60_000 });
  await startClient(`client-y-${token.slice(0, 4)}`, ports.b);
  await waitFor('client y: 2 tunnels on b', async () => (await tunnelsOn('b')) === 2, { timeoutMs: 60_000 });
  return { token, ports, servers, x, origin: origin! };
}

test('a GET whose only local tunnel dies is answered by a peer the routing cache did not know yet', async () => {
  const { token, ports, x, origin } = await pairWithStaleCache();
  // A slow GET to a goes over x (a knows no peer for the token); x dies while the origin holds it.
  const slow = request(`http://127.0.0.1:${ports.a}/broker/${token}/slow/1500`);
  await waitFor('the slow request reached the origin', () => origin.seen.some((s) => s.url === '/slow/1500'), { timeoutMs: 30_000 });
  x.kill('SIGKILL');
  const res = await slow;
  const body = await res.body.text();
  assert.equal(res.statusCode, 200, `${res.statusCode} ${String(res.headers['x-broker-failure'])} ${body}`);
  assert.equal(res.headers['x-broker-served-by'], 'b');
  assert.equal(origin.seen.filter((s) => s.url === '/slow/1500').length, 2, 'the GET was retried once, through b');
});

// Found by ha-rolling-restart in CI: a request that reached a server just after its SIGTERM
// (a balancer had picked it a moment before) got 503 server-draining, because that server's
// cache did not list the peers' tunnels of the token yet.
test('a draining server whose routing cache predates a peer\'s client forwards a new request to that peer, not 503', async () => {
  const { token, ports, servers, origin } = await pairWithStaleCache();
  // An answer in flight on a keeps its drain going while the new request arrives.
  const holding = request(`http://127.0.0.1:${ports.a}/broker/${token}/slow/3000`);
  await waitFor('the slow request reached the origin', () => origin.seen.some((s) => s.url === '/slow/3000'), { timeoutMs: 30_000 });
  servers.a!.kill('SIGTERM');
  await servers.a!.waitForOutput('draining: refusing new tunnels and requests', 10_000);
  const res = await request(`http://127.0.0.1:${ports.a}/broker/${token}/during-drain`);
  const body = await res.body.text();
  assert.equal(res.statusCode, 200, `${res.statusCode} ${String(res.headers['x-broker-failure'])} ${body}`);
  assert.equal(res.headers['x-broker-served-by'], 'b');
  const held = await holding;
  await held.body.text();
  assert.equal(held.statusCode, 200, 'the request in flight at SIGTERM finished');
});
