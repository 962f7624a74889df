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
  });
});
