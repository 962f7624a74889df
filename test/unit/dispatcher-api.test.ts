import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { loadDispatcherConfig } from '../../src/config/dispatcher.js';
import { createDispatcher, type Dispatcher } from '../../src/dispatcher/dispatcher.js';
import { createMemoryStore } from '../../src/dispatcher/memory-store.js';
import { FAILURES } from '../../src/protocol/failures.js';

const TOKEN = 'b9460892-5397-48f1-8697-488769ae3797';
const HASHED = createHash('sha256').update(TOKEN).digest('hex');
const SECRET = 'internal-secret-value-1';

describe('dispatcher HTTP API (in process)', () => {
  let d: Dispatcher;
  let now = 1_790_000_000_000;
  const base = () => `http://127.0.0.1:${d.port}`;
  const internal = (path: string, init: RequestInit = {}) =>
    fetch(`${base()}${path}`, { ...init, headers: { 'x-broker-internal-secret': SECRET, 'content-type': 'application/vnd.api+json', ...(init.headers as Record<string, string>) } });
  const allocate = (clientId: string, token = HASHED) =>
    fetch(`${base()}/hidden/broker/${token}/connections/${clientId}?version=2022-12-01%7Eexperimental`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.api+json' },
      body: JSON.stringify({ data: { attributes: { deployment_location: 'snyk-broker-client', broker_token_first_char: 'b' } } }),
    });

  before(async () => {
    const config = await loadDispatcherConfig({ PORT: '0', BROKER_INTERNAL_SECRET: SECRET, SERVER_PROBE_INTERVAL_MS: '0', DISPATCHER_HOST: '127.0.0.1', DISPATCHER_STARTUP_GRACE_MS: '0' });
    d = createDispatcher(config, { store: createMemoryStore(), clock: () => now });
    await d.start();
  });
  after(async () => {
    await d?.stop('test');
  });

  it('503 + Retry-After while no server is registered', async () => {
    const res = await allocate('c0');
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '2');
    const body = (await res.json()) as { errors: Array<{ code: string }> };
    assert.equal(body.errors[0]!.code, FAILURES.NO_LIVE_SERVER.code);
  });

  it('the internal API requires the secret when one is configured', async () => {
    const res = await fetch(`${base()}/internal/brokerservers/0?version=2022-12-02%7Eexperimental`, { method: 'POST', body: '{}' });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('x-broker-failure'), FAILURES.INTERNAL_SECRET_REQUIRED.reason);
    const wrong = await fetch(`${base()}/internal/brokerservers`, { headers: { 'x-broker-internal-secret': 'nope' } });
    assert.equal(wrong.status, 401);
  });

  it('registers servers, answers JSON:API allocations with server_id (server_url only for a public URL), refuses the 5th with 429', async () => {
    for (const id of ['0', '1', '2']) {
      // Server 2 published a public URL; the others only an internal peer URL, never handed to clients.
      const publicUrl = id === '2' ? { public_url: 'https://broker-2.example.com/' } : {};
      const res = await internal(`/internal/brokerservers/${id}?version=2022-12-02%7Eexperimental`, {
        method: 'POST',
        body: JSON.stringify({ data: { attributes: { health_check_link: `http://broker-server-${id}/healthcheck`, peer_url: `http://10.0.0.${id}:7341/`, ...publicUrl } } }),
      });
      assert.equal(res.status, 200);
    }
    const list = (await (await internal('/internal/brokerservers')).json()) as { data: Array<{ id: string; attributes: { status: string; peer_url: string } }> };
    assert.deepEqual(list.data.map((s) => [s.id, s.attributes.status, s.attributes.peer_url]), [
      ['0', 'live', 'http://10.0.0.0:7341'],
      ['1', 'live', 'http://10.0.0.1:7341'],
      ['2', 'live', 'http://10.0.0.2:7341'],
    ]);
    const ids = new Set<string>();
    for (const c of ['c1', 'c2', 'c3', 'c4']) {
      const res = await allocate(c);
      assert.equal(res.status, 201);
      assert.match(res.headers.get('content-type')!, /^application\/vnd\.api\+json/);
      const body = (await res.json()) as { jsonapi: unknown; data: { id: string; type: string; attributes: { server_id: string; server_url?: string } } };
      assert.deepEqual(body.jsonapi, { version: '1.0' });
      assert.equal(body.data.id, c);
      assert.equal(body.data.type, 'broker_connection');
      assert.equal(typeof body.data.attributes.server_id, 'string');
      assert.equal(body.data.attributes.server_url, body.data.attributes.server_id === '2' ? 'https://broker-2.example.com' : undefined);
      ids.add(body.data.attributes.server_id);
    }
    assert.equal(ids.size, 3);
    const again = await allocate('c1');
    assert.equal(again.status, 200);
    const refused = await allocate('c5');
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '2');
    assert.equal(refused.headers.get('x-broker-failure'), FAILURES.MAX_CLIENTS_PER_TOKEN.reason);
    assert.deepEqual(await refused.json(), {
      jsonapi: { version: '1.0' },
      errors: [
        {
          status: '429',
          code: FAILURES.MAX_CLIENTS_PER_TOKEN.code,
          title: 'Too many broker clients for this token',
          detail: 'token already has 4 clients allocated (the maximum); retry later',
        },
      ],
    });
  });

  it('records connections as the real server reports them, and serves the routing lookup', async () => {
    const q = (type: string) => `broker_client_id=c1&request_type=${type}&version=2022-12-02%7Eexperimental`;
    const body = JSON.stringify({ data: { attributes: { health_check_link: 'http://broker-server-0/healthcheck', broker_client_version: 'local' } } });
    const placed = (await (await allocate('c1')).json()) as { data: { attributes: { server_id: string } } };
    const sid = placed.data.attributes.server_id;
    assert.equal((await internal(`/internal/brokerservers/${sid}/connections/${HASHED}?${q('client-connected')}`, { method: 'POST', body })).status, 200);
    assert.equal((await internal(`/internal/brokerservers/${sid}/connections/${HASHED}?${q('client-connected')}`, { method: 'POST', body })).status, 200);
    assert.equal((await internal(`/internal/brokerservers/${sid}/connections/${HASHED}?broker_client_id=c1&latency=3&${q('client-pinged')}`, { method: 'POST', body })).status, 200);
    const lookup = (await (await internal(`/internal/tokens/${HASHED}/connections`)).json()) as {
      data: { attributes: { servers: Array<{ server_id: string; peer_url: string; connections: Array<{ client_id: string; tunnels: number }> }> } };
    };
    assert.deepEqual(
      lookup.data.attributes.servers.map((s) => [s.server_id, s.peer_url, s.connections.map((c) => [c.client_id, c.tunnels])]),
      [[sid, `http://10.0.0.${sid}:7341`, [['c1', 2]]]],
    );
    const all = (await (await internal('/internal/connections')).json()) as { data: Array<{ id: string; attributes: { servers: Array<{ server_id: string }> } }> };
    assert.deepEqual(all.data.map((t) => [t.id, t.attributes.servers.map((s) => s.server_id)]), [[HASHED, [sid]]]);
    const del = await internal(`/internal/brokerservers/${sid}/connections/${HASHED}?broker_client_id=c1&version=2022-12-02%7Eexperimental`, { method: 'DELETE' });
    assert.equal(del.status, 204);
    assert.equal(del.headers.get('x-broker-dispatcher-register'), null, 'registered servers are not asked to register');
    // A server the dispatcher only knows from reports (it restarted) is asked to register again.
    const other = createHash('sha256').update('another-token').digest('hex');
    const unknown = await internal(`/internal/brokerservers/9/connections/${other}?${q('client-pinged')}`, { method: 'POST', body });
    assert.equal(unknown.status, 200);
    assert.equal(unknown.headers.get('x-broker-dispatcher-register'), 'true');
    await internal(`/internal/brokerservers/9/connections/${other}?broker_client_id=c1&version=2022-12-02%7Eexperimental`, { method: 'DELETE' });
    await internal('/internal/brokerservers/9', { method: 'DELETE' });
  });

  it('a client killed under a full token frees its slot after the lease; DELETE frees one at once', async () => {
    const sid = ((await (await allocate('c2')).json()) as { data: { attributes: { server_id: string } } }).data.attributes.server_id;
    const path = `/internal/brokerservers/${sid}/connections/${HASHED}?broker_client_id=c2`;
    await internal(`${path}&request_type=client-connected`, { method: 'POST' });
    await internal(`${path}&request_type=client-connected`, { method: 'POST' });
    await internal(path, { method: 'DELETE' });
    await internal(path, { method: 'DELETE' });
    assert.equal((await allocate('c5')).status, 429);
    now += 2_000;
    assert.equal((await allocate('c5')).status, 201);
    assert.equal((await allocate('c6')).status, 429);
    const rel = await fetch(`${base()}/hidden/broker/${HASHED}/connections/c3?version=2022-12-01%7Eexperimental`, { method: 'DELETE' });
    assert.equal(rel.status, 204);
    assert.equal((await allocate('c6')).status, 201);
  });

  it('rolling update: x-broker-client-instance and broker_client_instance keep the old pod from freeing the new one’s slot', async () => {
    const allocateAs = (clientId: string, instance: string, method = 'POST') =>
      fetch(`${base()}/hidden/broker/${HASHED}/connections/${clientId}?version=2022-12-01%7Eexperimental`, {
        method,
        headers: { 'content-type': 'application/vnd.api+json', 'x-broker-client-instance': instance },
        ...(method === 'POST' ? { body: JSON.stringify({ data: { attributes: { deployment_location: 'snyk-broker-client' } } }) } : {}),
      });
    // The token is full (4 clients); c6's old pod is connected, its replacement starts.
    const sid = ((await (await allocateAs('c6', 'old')).json()) as { data: { attributes: { server_id: string } } }).data.attributes.server_id;
    const report = (instance: string, role: string, method: 'POST' | 'DELETE') =>
      internal(`/internal/brokerservers/${sid}/connections/${HASHED}?broker_client_id=c6&connection_role=${role}&broker_client_instance=${instance}${method === 'POST' ? '&request_type=client-connected' : ''}&version=2022-12-02%7Eexperimental`, { method });
    for (const role of ['primary', 'secondary']) assert.equal((await report('old', role, 'POST')).status, 200);
    assert.equal((await allocateAs('c6', 'new')).status, 200);
    for (const role of ['primary', 'secondary']) assert.equal((await report('new', role, 'POST')).status, 200);
    // The old pod leaves: its tunnels close, it releases.
    for (const role of ['primary', 'secondary']) assert.equal((await report('old', role, 'DELETE')).status, 204);
    assert.equal((await allocateAs('c6', 'old', 'DELETE')).status, 204);
    assert.equal((await allocate('c7')).status, 429, 'the slot stays with the new pod');
    const lookup = (await (await internal(`/internal/tokens/${HASHED}/connections`)).json()) as {
      data: { attributes: { servers: Array<{ connections: Array<{ client_id: string; tunnels: number }> }>; allocations: Array<{ client_id: string; connected: boolean }> } };
    };
    assert.deepEqual(lookup.data.attributes.servers.flatMap((s) => s.connections).filter((c) => c.client_id === 'c6').map((c) => c.tunnels), [2]);
    assert.equal(lookup.data.attributes.allocations.find((a) => a.client_id === 'c6')?.connected, true);
    // The new pod's own release (scale-down) frees it; an unusable header is ignored, not an error.
    for (const role of ['primary', 'secondary']) await report('new', role, 'DELETE');
    assert.equal((await allocateAs('c6', 'new', 'DELETE')).status, 204);
    assert.equal((await allocate('c7')).status, 201);
    assert.equal((await allocateAs('c8', 'bad instance/"')).status, 429);
  });

  it('server-stopping: the server gets no new clients', async () => {
    assert.equal((await internal('/internal/brokerservers/0?version=2022-12-02%7Eexperimental', { method: 'DELETE' })).status, 204);
    const other = createHash('sha256').update('other').digest('hex');
    for (const c of ['o1', 'o2', 'o3', 'o4']) {
      const b = (await (await allocate(c, other)).json()) as { data: { attributes: { server_id: string } } };
      assert.notEqual(b.data.attributes.server_id, '0');
    }
    const list = (await (await internal('/internal/brokerservers')).json()) as { data: Array<{ id: string; attributes: { status: string } }> };
    assert.equal(list.data.find((s) => s.id === '0')?.attributes.status, 'stopping');
  });

  it('bad requests get a 4xx naming what was wrong, never a crash', async () => {
    const bad = await fetch(`${base()}/hidden/broker/not-a-hash/connections/c1`, { method: 'POST', body: '{}' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { errors: Array<{ code: string }> }).errors[0]!.code, FAILURES.INVALID_HASHED_TOKEN.code);
    const badJson = await fetch(`${base()}/hidden/broker/${HASHED}/connections/c1`, { method: 'POST', body: '{not json' });
    assert.equal(badJson.status, 400);
    const badClient = await fetch(`${base()}/hidden/broker/${HASHED}/connections/a%2Fb`, { method: 'POST', body: '{}' });
    assert.equal(badClient.status, 400);
    const noId = await internal(`/internal/brokerservers/0/connections/${HASHED}?request_type=client-connected`, { method: 'POST' });
    assert.equal(noId.status, 400);
    const badPeer = await internal('/internal/brokerservers/7', { method: 'POST', body: JSON.stringify({ data: { attributes: { peer_url: 'ftp://x' } } }) });
    assert.equal(badPeer.status, 400);
    const method = await fetch(`${base()}/hidden/broker/${HASHED}/connections/c1`, { method: 'GET' });
    assert.equal(method.status, 405);
    const missing = await fetch(`${base()}/nope`);
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get('x-broker-failure'), FAILURES.NOT_FOUND.reason);
    const huge = await fetch(`${base()}/hidden/broker/${HASHED}/connections/c1`, { method: 'POST', body: 'x'.repeat(200_000) });
    assert.equal(huge.status, 413);
  });

  it('health, readiness and metrics (tokens only as an 8-char hash prefix)', async () => {
    for (const p of ['/healthcheck', '/livez', '/readyz']) assert.equal((await fetch(`${base()}${p}`)).status, 200, p);
    const text = await (await fetch(`${base()}/metrics`)).text();
    assert.match(text, /broker_dispatcher_allocations_total\{result="created"\} \d+/);
    assert.match(text, /broker_dispatcher_refusals_total\{code="MAX_CLIENTS_PER_TOKEN"\} \d+/);
    assert.match(text, /broker_dispatcher_servers\{status="live"\} 2/);
    assert.match(text, new RegExp(`broker_dispatcher_token_allocations\\{token_hash="${HASHED.slice(0, 8)}"\\} 4`));
    assert.ok(!text.includes(HASHED), 'no full hashed token in metrics');
    assert.ok(!text.includes(TOKEN));
  });
});
