// Our HA client against the real snyk-broker server, with a dispatcher stand-in answering the
// allocation as Snyk's does: server_id travels on the tunnel and response-data URLs, the real
// server accepts both, and the HA log lines appear.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { startSnykBroker } from '../support/snyk-broker.js';
import { waitFor } from '../support/wait.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';
import { httpStatus } from '../support/http-status.js';

const group = new ProcessGroup();
const token = randomUUID();
let origin: Origin;
let dispatcher: Server;
const allocations: string[] = [];
/** x-broker-client-instance of each allocation call (our extension; Snyk's dispatcher ignores it). */
const instances: Array<string | undefined> = [];
let serverPort: number;
let client: RunningProcess;

before(async () => {
  origin = await startOrigin();
  dispatcher = createServer((req, res) => {
    allocations.push(`${req.method} ${req.url}`);
    if (req.url?.startsWith('/hidden/broker/')) instances.push(req.headers['x-broker-client-instance'] as string | undefined);
    req.resume();
    res.writeHead(201, { 'content-type': 'application/vnd.api+json' });
    res.end(JSON.stringify({ jsonapi: { version: '1.0' }, data: { id: 'x', type: 'broker_connection', attributes: { server_id: '0' } } }));
  });
  const dispatcherPort = await listen(dispatcher, 0, '127.0.0.1');
  const dir = await mkdtemp(join(tmpdir(), 'client-ha-interop-'));
  const serverAccept = join(dir, 'server-accept.json');
  await writeFile(serverAccept, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [] }));
  const clientAccept = join(dir, 'client-accept.json');
  await writeFile(clientAccept, JSON.stringify({ private: [{ method: 'GET', path: '/echo/*', origin: '${ORIGIN_URL}' }], public: [] }));
  serverPort = await freePort();
  await startSnykBroker(group, 'snyk-server', 'server', { PORT: String(serverPort), ACCEPT: serverAccept });
  await waitFor('snyk-broker server health', async () => (await httpStatus(`http://127.0.0.1:${serverPort}/healthcheck`)) === 200, { timeoutMs: 60_000 });
  const clientPort = await freePort();
  client = group.broker('client', 'client', {
    BROKER_TOKEN: token,
    BROKER_SERVER_URL: `http://127.0.0.1:${serverPort}`,
    BROKER_HA_MODE_ENABLED: 'yes',
    API_BASE_URL: `http://127.0.0.1:${dispatcherPort}`,
    PORT: String(clientPort),
    ACCEPT: clientAccept,
    ORIGIN_URL: origin.url,
  });
  await waitFor('client ready', async () => (await httpStatus(`http://127.0.0.1:${clientPort}/readyz`)) === 200, { timeoutMs: 60_000 });
});

after(async () => {
  try {
    assert.ok(!group.allOutput().includes(token), 'token in process output');
  } finally {
    await group.stopAll();
    await origin?.close();
    await closeServer(dispatcher);
  }
});

test('the real server relays for an HA client carrying server_id', async () => {
  await waitFor('relay', async () => (await httpStatus(`http://127.0.0.1:${serverPort}/broker/${token}/echo/ha`)) === 200, { timeoutMs: 30_000 });
  assert.ok(allocations.some((a) => a.startsWith('POST /hidden/broker/') && a.endsWith('?version=2022-12-01%7Eexperimental')));
  const lines = client.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(lines.some((e) => e.msg === 'checking for HA mode' && e.enabled === true));
  assert.ok(lines.some((e) => e.msg === 'received server id' && e.serverId === '0'));
  const connecting = lines.filter((e) => e.msg === 'broker client is connecting to broker server');
  // A reconnect on a loaded machine may repeat a line: compare the distinct URLs.
  assert.deepEqual([...new Set(connecting.map((e) => e.url))].sort(), [
    `http://127.0.0.1:${serverPort}/?server_id=0&connection_role=primary`,
    `http://127.0.0.1:${serverPort}/?server_id=0&connection_role=secondary`,
  ]);
});

test('stop releases the allocation', async () => {
  assert.equal(await client.stop(), 0);
  assert.ok(allocations.some((a) => a.startsWith('DELETE /hidden/broker/')));
  // Every call of this process names the same instance, so a dispatcher can tell it from a twin
  // with the same client id (rolling updates); the real server took the tunnels with it.
  assert.ok(instances.length >= 2, 'an allocation and a release');
  assert.equal(new Set(instances).size, 1, `instances: ${JSON.stringify(instances)}`);
  assert.match(instances[0] ?? '', /^[0-9a-f-]{36}$/);
});
