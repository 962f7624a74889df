import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { hashToken } from '../../src/protocol/index.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';
import { FakeTunnelClient } from '../support/fake-tunnel-client.js';
import { startInProcessServer, type InProcessServer } from '../support/in-process-server.js';
import { waitFor } from '../support/wait.js';

const T = 'b9460892-5397-48f1-8697-488769ae3797';

interface Call {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

async function recordingDispatcher(status = 200) {
  const calls: Call[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      calls.push({ method: req.method!, url: req.url!, headers: req.headers, body, at: Date.now() });
      res.writeHead(typeof status === 'number' ? status : 200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  const port = await listen(server, 0, '127.0.0.1');
  return { url: `http://127.0.0.1:${port}`, calls, close: () => closeServer(server) };
}

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('reports server-starting, client-connected, client-pinged, client-disconnected and server-stopping as §6.4 (plus peer_url)', async () => {
  const d = await recordingDispatcher();
  cleanups.push(d.close);
  const s: InProcessServer = await startInProcessServer({
    DISPATCHER_URL: d.url,
    HOSTNAME: 'broker-server-3',
    BROKER_SERVER_PEER_URL: 'http://broker-server-3.broker-server:7341',
    BROKER_INTERNAL_SECRET: 'internal-secret-value',
  });
  cleanups.push(() => s.stop());
  const version = 'version=2022-12-02%7Eexperimental';
  await waitFor('server-starting', () => d.calls.find((c) => c.url === `/internal/brokerservers/3?${version}`));
  const starting = d.calls.find((c) => c.url === `/internal/brokerservers/3?${version}`)!;
  assert.equal(starting.method, 'POST');
  assert.equal(starting.headers['content-type'], 'application/vnd.api+json');
  assert.equal(starting.headers['x-broker-internal-secret'], 'internal-secret-value');
  assert.deepEqual(JSON.parse(starting.body), { data: { attributes: { health_check_link: 'http://broker-server-3/healthcheck', peer_url: 'http://broker-server-3.broker-server:7341', open_tunnels: 0 } } });

  const client = new FakeTunnelClient(s.url, T, { clientId: 'client-1', version: '4.190.0' });
  cleanups.push(() => client.close());
  await client.opened;
  const connPath = `/internal/brokerservers/3/connections/${hashToken(T)}`;
  const connected = await waitFor('client-connected', () => d.calls.find((c) => c.url.startsWith(connPath) && c.url.includes('request_type=client-connected')));
  assert.equal(connected.method, 'POST');
  // A client without an instance id (Snyk's) gets a per-tunnel one, the same in every report of the tunnel.
  const instance = new URL(connected.url, 'http://x').searchParams.get('broker_client_instance') ?? '';
  assert.match(instance, /^t[0-9a-f]{8}\.\d+$/);
  assert.equal(connected.url, `${connPath}?broker_client_id=client-1&connection_role=primary&broker_client_instance=${instance}&request_type=client-connected&${version}`);
  assert.deepEqual(JSON.parse(connected.body), {
    data: { attributes: { health_check_link: 'http://broker-server-3/healthcheck', peer_url: 'http://broker-server-3.broker-server:7341', broker_client_version: '4.190.0' } },
  });

  client.ping(Date.now() - 40);
  const pinged = await waitFor('client-pinged', () => d.calls.find((c) => c.url.includes('request_type=client-pinged')));
  const latency = Number(new URL(pinged.url, 'http://x').searchParams.get('latency'));
  assert.ok(latency >= 40 && latency < 5000, `latency ${latency}`);
  assert.match(pinged.url, new RegExp(`^${connPath}\\?broker_client_id=client-1&connection_role=primary&broker_client_instance=${instance.replace('.', '\\.')}&latency=\\d+&request_type=client-pinged&${version}$`));

  client.close();
  const gone = await waitFor('client-disconnected', () => d.calls.find((c) => c.method === 'DELETE' && c.url.startsWith(connPath)));
  assert.equal(gone.url, `${connPath}?broker_client_id=client-1&connection_role=primary&broker_client_instance=${instance}&${version}`);
  assert.equal(gone.body, '');

  // Our client names its process (instanceId): that is the instance of every report of its tunnels.
  const ours = new FakeTunnelClient(s.url, T, { clientId: 'client-2', instanceId: 'proc-b', version: '4.190.0' });
  cleanups.push(() => ours.close());
  await ours.opened;
  const oursConnected = await waitFor('client-connected of client-2', () => d.calls.find((c) => c.url.includes('broker_client_id=client-2') && c.url.includes('request_type=client-connected')));
  assert.equal(oursConnected.url, `${connPath}?broker_client_id=client-2&connection_role=primary&broker_client_instance=proc-b&request_type=client-connected&${version}`);
  ours.close();
  const oursGone = await waitFor('client-disconnected of client-2', () => d.calls.find((c) => c.method === 'DELETE' && c.url.includes('broker_client_id=client-2')));
  assert.equal(oursGone.url, `${connPath}?broker_client_id=client-2&connection_role=primary&broker_client_instance=proc-b&${version}`);

  await s.stop();
  const stopping = d.calls.find((c) => c.method === 'DELETE' && c.url === `/internal/brokerservers/3?${version}`);
  assert.ok(stopping, 'server-stopping reported before stop() resolved');
  assert.ok(!d.calls.some((c) => c.url.includes(T)), 'the raw token never goes to the dispatcher');
});

test('a failing dispatcher is retried 3 times (~200/400/800 ms) and never blocks relays', async () => {
  const d = await recordingDispatcher(500);
  cleanups.push(d.close);
  const s = await startInProcessServer({ DISPATCHER_URL: d.url, BROKER_SERVER_ID: 'x' });
  cleanups.push(() => s.stop());
  await waitFor('4 server-starting attempts', () => d.calls.filter((c) => c.url.startsWith('/internal/brokerservers/x?')).length === 4, { timeoutMs: 10_000 });
  const attempts = d.calls.filter((c) => c.url.startsWith('/internal/brokerservers/x?'));
  const gaps = attempts.slice(1).map((c, i) => c.at - attempts[i]!.at);
  assert.ok(gaps[0]! >= 150 && gaps[1]! >= 350 && gaps[2]! >= 700, `gaps ${gaps.join(',')}`);
  // Relays do not wait on the dispatcher: an identify and a request go through while reports fail.
  const client = new FakeTunnelClient(s.url, T, { clientId: 'c' });
  cleanups.push(() => client.close());
  await client.opened;
  await waitFor('ready', () => s.server.pool.members(T).length === 1);
  const res = fetch(`${s.url}/broker/${T}/x`);
  const r = await client.nextRequest(0);
  const { encodeResponseHead } = await import('../../src/protocol/index.js');
  const { postResponseData } = await import('../support/fake-tunnel-client.js');
  await postResponseData(s.url, T, (r.args[0] as { streamingID: string }).streamingID, [encodeResponseHead({ status: 200 }), Buffer.from('ok')]);
  assert.equal((await res).status, 200);
});
