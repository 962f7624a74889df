import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { encodeResponseHead } from '../../src/protocol/index.js';
import { FAILURES } from '../../src/protocol/failures.js';
import { FakeTunnelClient } from '../support/fake-tunnel-client.js';
import { FakeValidation, unsignedJwt } from '../support/fake-validation.js';
import { startPeerServers } from '../support/peer-servers.js';
import { platform } from '../support/platform-request.js';
import { ProcessGroup } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

/**
 * Mandatory auth in HA mode: two of our servers (processes) and our dispatcher. A Universal
 * Broker client's tunnel sits on server a; its answer uploads and auth refreshes that land on
 * server b (one Service URL for all) are passed on to a, which checks them.
 */
const group = new ProcessGroup();
const clients: FakeTunnelClient[] = [];
let gateway: FakeValidation | undefined;
after(async () => {
  for (const c of clients) c.close();
  await group.stopAll();
  await gateway?.stop();
});

const GOOD = `Bearer ${unsignedJwt({ azp: 'app-ha' })}`;
const OTHER = `Bearer ${unsignedJwt({ azp: 'someone-else' })}`;

function post(url: string, headers: Record<string, string>, body: Buffer | string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('HA: answer uploads and auth refreshes that land on the other server reach the tunnel\'s server and are checked there', async () => {
  const token = randomUUID();
  gateway = await new FakeValidation([GOOD]).start();
  const { urls } = await startPeerServers(group, ['a', 'b'], {
    internalSecret: 'ha-auth-secret',
    serverEnv: { BROKER_SERVER_MANDATORY_AUTH_ENABLED: 'true', GATEWAY_HOSTNAME: gateway.url, LOG_LEVEL: 'debug' },
  });
  const c = new FakeTunnelClient(urls.a!, token, { clientId: 'ub-client', query: 'server_id=a', headers: { authorization: GOOD } });
  clients.push(c);
  await c.opened;
  await waitFor('the tunnel is ready on a', async () => (await platform(`${urls.a}/connection-status/${token}`)).status === 200);

  const refreshBody = JSON.stringify({ data: { type: 'broker_connection', attributes: { broker_client_id: 'ub-client' } } });
  const refreshVia = (base: string, serverId: string) => post(`${base}/hidden/brokers/connections/${token}/auth/refresh?server_id=${serverId}&connection_role=primary`, { authorization: GOOD, 'content-type': 'application/vnd.api+json' }, refreshBody);
  // Until b's routing lookup knows a, b answers for itself (no such tunnel here).
  const viaB = await waitFor('a refresh sent to b is passed on to a', async () => {
    const r = await refreshVia(urls.b!, 'a');
    return r.status === 201 ? r : undefined;
  }, { timeoutMs: 30_000 });
  assert.equal(viaB.body, 'OK');
  const local = await refreshVia(urls.b!, 'b');
  assert.equal(local.status, 401, 'a refresh naming b itself is answered by b, which holds no such tunnel');
  assert.equal(local.headers['x-broker-failure'], FAILURES.AUTH_UNKNOWN_TUNNEL.reason);

  const answer = platform(`${urls.a}/broker/${token}/echo/ha`);
  const r = await c.nextRequest(0);
  const streamingID = (r.args[0] as { streamingID: string }).streamingID;
  assert.match(streamingID, /\.a$/, 'the streamingID names server a');
  const upload = (authorization: string, body: string) =>
    post(`${urls.b}/hidden/brokers/response-data/${token}/${streamingID}?server_id=a&connection_role=primary`, { authorization, 'content-type': 'application/vnd.broker.stream+octet-stream' }, Buffer.concat([encodeResponseHead({ status: 200 }), Buffer.from(body)]));
  const wrong = await upload(OTHER, 'forged');
  assert.equal(wrong.status, 401, 'checked on a, where the tunnel is');
  assert.equal(wrong.headers['x-broker-failure'], FAILURES.AUTH_INVALID.reason);
  const right = await upload(GOOD, 'answered through b');
  assert.equal(right.status, 200, right.body);
  const got = await answer;
  assert.equal(got.status, 200);
  assert.equal(got.body, 'answered through b');
  assert.equal(gateway.calls.length, 2, 'the handshake and the refresh, both on a (b validates nothing it passes on)');
});
