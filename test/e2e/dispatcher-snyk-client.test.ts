// The REAL snyk-broker client in HA mode asks our dispatcher for its server id.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rankServers } from '../../src/dispatcher/placement.js';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startSnykBroker } from '../support/snyk-broker.js';
import { waitFor } from '../support/wait.js';

const TOKEN = 'b9460892-5397-48f1-8697-488769ae3797';
const HASHED = createHash('sha256').update(TOKEN).digest('hex');
const V = 'version=2022-12-02%7Eexperimental';

describe('real snyk-broker client in HA mode against our dispatcher', () => {
  const group = new ProcessGroup();
  let dir: string;
  let port: number;
  let dispatcher: RunningProcess;
  const base = () => `http://127.0.0.1:${port}`;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dispatcher-snyk-client-'));
    port = await freePort();
    dispatcher = group.broker('dispatcher', 'dispatcher', { PORT: String(port), LOG_LEVEL: 'debug', SERVER_PROBE_INTERVAL_MS: '0' });
    await dispatcher.waitForOutput('dispatcher listening', 30_000);
  });
  after(async () => {
    await group.stopAll();
    await rm(dir, { recursive: true, force: true });
  });

  it('two real clients each receive the server id our dispatcher chose, on distinct servers', async () => {
    // Three servers register as the real server does (§6.4), plus our peer_url attribute.
    const standIns: Record<string, number> = {};
    for (const id of ['0', '1', '2']) {
      standIns[id] = await freePort(); // nothing listens there: the client needn't get a tunnel
      const res = await fetch(`${base()}/internal/brokerservers/${id}?${V}`, {
        method: 'POST',
        headers: { 'content-type': 'application/vnd.api+json' },
        body: JSON.stringify({ data: { attributes: { health_check_link: `http://broker-server-${id}/healthcheck`, peer_url: `http://127.0.0.1:${standIns[id]}` } } }),
      });
      assert.equal(res.status, 200);
    }
    const expected = rankServers(HASHED, ['0', '1', '2']);
    const accept = join(dir, 'accept.json');
    await writeFile(accept, JSON.stringify({ private: [{ method: 'GET', path: '/*', origin: 'http://127.0.0.1:9' }], public: [] }));

    const clients: RunningProcess[] = [];
    for (let i = 0; i < 2; i++) {
      const client = await startSnykBroker(group, `snyk-client-${i}`, 'client', {
        BROKER_TOKEN: TOKEN,
        BROKER_SERVER_URL: `http://127.0.0.1:${standIns['0']}`,
        BROKER_HA_MODE_ENABLED: 'true',
        BROKER_DISPATCHER_BASE_URL: base(),
        PREFLIGHT_CHECKS_ENABLED: 'false',
        PORT: String(await freePort()),
        ACCEPT: accept,
        LOG_LEVEL: 'debug',
      });
      clients.push(client);
      // §6.3: {"level":20,"serverId":"<id>","msg":"Received server id.",...}
      await client.waitForOutput(new RegExp(`"serverId":"${expected[i]}"[^\\n]*"msg":"Received server id\\."`), 60_000);
      await client.waitForOutput(new RegExp(`server_id=${expected[i]}&connection_role=primary`), 60_000);
    }

    // The dispatcher recorded both allocations, on the two most preferred (distinct) servers.
    const lookup = await waitFor('two allocations', async () => {
      const res = await fetch(`${base()}/internal/tokens/${HASHED}/connections`);
      const body = (await res.json()) as { data: { attributes: { allocations: Array<{ client_id: string; server_id: string }> } } };
      return body.data.attributes.allocations.length === 2 ? body.data.attributes.allocations : undefined;
    });
    assert.deepEqual(lookup.map((a) => a.server_id).sort(), expected.slice(0, 2).sort());
    assert.match(dispatcher.output(), /"msg":"allocation granted"/);
    assert.ok(!dispatcher.output().includes(TOKEN), 'the raw token never reaches the dispatcher');
    await Promise.all(clients.map((c) => c.stop(5_000)));
  });

  it('the real snyk-broker server registers and reports the real client’s two tunnels; a kill frees the slot', async () => {
    const serverPort = await freePort();
    const serverAccept = join(dir, 'server-accept.json');
    await writeFile(serverAccept, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [{ method: 'any', path: '/*', origin: 'http://127.0.0.1:9' }] }));
    await startSnykBroker(group, 'snyk-server', 'server', {
      PORT: String(serverPort),
      ACCEPT: serverAccept,
      DISPATCHER_URL: base(),
      HOSTNAME: 'broker-server-7',
      LOG_LEVEL: 'info',
    });
    // server-starting: POST /internal/brokerservers/7 (id = HOSTNAME after the last '-').
    await waitFor('the real server to register as 7', async () => {
      const body = (await (await fetch(`${base()}/internal/brokerservers`)).json()) as { data: Array<{ id: string; attributes: { health_check_link: string } }> };
      return body.data.find((s) => s.id === '7' && s.attributes.health_check_link === 'http://broker-server-7/healthcheck');
    }, { timeoutMs: 60_000 });
    // Take the other servers out of placement so the client is sent to the real one.
    for (const id of ['0', '1', '2']) await fetch(`${base()}/internal/brokerservers/${id}?${V}`, { method: 'DELETE' });

    const token = 'a7e1f0c2-3b4d-4e5f-8a9b-0c1d2e3f4a5b';
    const hashed = createHash('sha256').update(token).digest('hex');
    const accept = join(dir, 'accept.json');
    const client = await startSnykBroker(group, 'snyk-client-real-server', 'client', {
      BROKER_TOKEN: token,
      BROKER_SERVER_URL: `http://127.0.0.1:${serverPort}`,
      BROKER_HA_MODE_ENABLED: 'true',
      BROKER_DISPATCHER_BASE_URL: base(),
      PREFLIGHT_CHECKS_ENABLED: 'false',
      PORT: String(await freePort()),
      ACCEPT: accept,
      LOG_LEVEL: 'debug',
    });
    await client.waitForOutput(/"serverId":"7"[^\n]*"msg":"Received server id\."/, 60_000);
    // client-connected for both tunnels, reported by the real server (§6.4).
    const lookup = async () =>
      ((await (await fetch(`${base()}/internal/tokens/${hashed}/connections`)).json()) as {
        data: { attributes: { servers: Array<{ server_id: string; connections: Array<{ client_id: string; tunnels: number }> }>; allocations: Array<{ client_id: string; connected: boolean }> } };
      }).data.attributes;
    let last: unknown;
    const seen = await waitFor('two tunnels reported on server 7', async () => {
      const l = await lookup();
      last = l;
      const s7 = l.servers.find((s) => s.server_id === '7');
      return s7 && s7.connections.length === 1 && s7.connections[0]!.tunnels === 2 ? l : undefined;
    }, { timeoutMs: 60_000 }).catch((err: Error) => {
      const out = group.all().filter((p) => p.name === 'snyk-server' || p.name === 'snyk-client-real-server').map((p) => `--- ${p.name}\n${p.output().slice(-4000)}`);
      throw new Error(`${err.message}\nlast lookup: ${JSON.stringify(last)}\n${out.join('\n')}`);
    });
    assert.equal(seen.allocations.length, 1);
    assert.equal(seen.allocations[0]!.connected, true);

    // kill -9: the real server reports client-disconnected for both tunnels; the lease (2 s) runs out.
    client.kill('SIGKILL');
    await waitFor('the killed client’s slot to free', async () => {
      const l = await lookup();
      return l.servers.length === 0 && l.allocations.length === 0;
    }, { timeoutMs: 60_000 });
  });
});
