// HA with our own processes: dispatcher + two servers behind one balancer + one HA client. The
// client is allocated, connects through the balancer (BROKER_SERVER_URL) with the server_id the
// dispatcher names and lands on that server, and when that server drains (SIGTERM) it goes back
// to the dispatcher and ends up on the other server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { waitFor } from '../support/wait.js';
import { httpStatus } from '../support/http-status.js';
import { startBalancer, type Balancer } from '../../src/demo/balancer.js';

const group = new ProcessGroup();
const token = randomUUID();
let origin: Origin;
const servers: Array<{ id: string; port: number; proc: RunningProcess }> = [];
let client: RunningProcess;
let clientPort: number;
let balancer: Balancer;

function logLines(proc: RunningProcess): Array<Record<string, unknown>> {
  return proc
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    });
}

before(async () => {
  origin = await startOrigin();
  const dispatcherPort = await freePort();
  group.broker('dispatcher', 'dispatcher', { PORT: String(dispatcherPort), DISPATCHER_HOST: '127.0.0.1' });
  await waitFor('dispatcher up', async () => (await httpStatus(`http://127.0.0.1:${dispatcherPort}/healthcheck`)) > 0, { timeoutMs: 30_000 });
  for (const id of ['0', '1']) {
    const port = await freePort();
    const proc = group.broker(`server-${id}`, 'server', {
      PORT: String(port),
      BROKER_SERVER_HOST: '127.0.0.1',
      DISPATCHER_URL: `http://127.0.0.1:${dispatcherPort}`,
      BROKER_SERVER_ID: id,
      HOSTNAME: `broker-server-${id}`,
      BROKER_SERVER_PEER_URL: `http://127.0.0.1:${port}`,
      BROKER_SERVER_DRAIN_GRACE_MS: '3000',
    });
    servers.push({ id, port, proc });
    await waitFor(`server ${id} up`, async () => (await httpStatus(`http://127.0.0.1:${port}/healthcheck`)) === 200, { timeoutMs: 30_000 });
  }
  balancer = await startBalancer(servers.map((s) => s.port));
  clientPort = await freePort();
  client = group.broker('client', 'client', {
    BROKER_TOKEN: token,
    // The shared URL; server_id (from the dispatcher) decides which server holds the tunnel.
    BROKER_SERVER_URL: `http://127.0.0.1:${balancer.port}`,
    BROKER_HA_MODE_ENABLED: 'true',
    BROKER_DISPATCHER_BASE_URL: `http://127.0.0.1:${dispatcherPort}`,
    PORT: String(clientPort),
    ACCEPT: await writeAcceptFile({ private: [{ method: 'GET', path: '/echo/*', origin: '${ORIGIN_URL}' }], public: [] }),
    ORIGIN_URL: origin.url,
    PREFLIGHT_CHECKS_ENABLED: 'false',
  });
  await waitFor('client ready', async () => (await httpStatus(`http://127.0.0.1:${clientPort}/readyz`)) === 200, { timeoutMs: 60_000 });
});

after(async () => {
  try {
    assert.ok(!group.allOutput().includes(token), 'token in process output');
  } finally {
    await group.stopAll();
    await balancer?.close();
    await origin?.close();
  }
});

function allocatedServer(): { id: string; port: number; proc: RunningProcess } {
  const received = logLines(client).filter((e) => e.msg === 'received server id');
  const last = received.at(-1);
  assert.ok(last, 'no "received server id" line');
  const s = servers.find((x) => x.id === String(last.serverId));
  assert.ok(s, `unknown server id ${String(last.serverId)}`);
  return s;
}

test('the client connects where the dispatcher says, with the HA log lines', async () => {
  const s = allocatedServer();
  const lines = logLines(client);
  assert.ok(lines.some((e) => e.msg === 'checking for HA mode' && e.enabled === true && e.level === 'info'));
  const connecting = lines.find((e) => e.msg === 'broker client is connecting to broker server');
  // No server_url from the dispatcher (no BROKER_SERVER_PUBLIC_URL): the shared URL with server_id.
  assert.equal(connecting?.url, `http://127.0.0.1:${balancer.port}/?server_id=${s.id}&connection_role=primary`);
  await waitFor('both tunnels on the allocated server', async () => (await httpStatus(`http://127.0.0.1:${s.port}/connection-status/${token}`)) === 200, { timeoutMs: 30_000 });
  await waitFor('relay via the allocated server', async () => (await httpStatus(`http://127.0.0.1:${s.port}/broker/${token}/echo/ha`)) === 200, { timeoutMs: 30_000 });
});

test('when its server drains, the client is re-allocated to the other one', async () => {
  const first = allocatedServer();
  const other = servers.find((x) => x !== first)!;
  assert.equal(await first.proc.stop(), 0);
  balancer.setBackends([other.port]);
  await waitFor('re-allocated to the other server', () => logLines(client).filter((e) => e.msg === 'received server id').at(-1)?.serverId === other.id, { timeoutMs: 60_000, intervalMs: 200 });
  await waitFor('relay via the other server', async () => (await httpStatus(`http://127.0.0.1:${other.port}/broker/${token}/echo/after`)) === 200, { timeoutMs: 60_000, intervalMs: 300 });
  const seen = origin.seen.filter((x) => x.url === '/echo/after');
  assert.ok(seen.length >= 1);
});
