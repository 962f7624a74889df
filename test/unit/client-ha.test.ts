// HA mode: allocation before connecting (throttled, then granted), server_id and server_url
// use, re-allocation after a drain close, release on stop, and the log lines of the contract.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { request } from 'undici';
import { FakeBrokerServer } from '../support/fake-broker-server.js';
import { startTestClient, type TestClient } from '../support/client-harness.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';
import { hashToken } from '../../src/protocol/index.js';

const token = randomUUID();
const clientId = `ha-client-${randomUUID()}`;
let fake: FakeBrokerServer;
let origin: Origin;
let tc: TestClient;
let dispatcher: Server;
let dispatcherUrl: string;
const calls: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string; at: number }> = [];
/** The dispatcher answers 429 until a test lifts this (after checking readiness). */
let throttled = true;

before(async () => {
  fake = await new FakeBrokerServer().start();
  origin = await startOrigin();
  dispatcher = createServer(async (req, res) => {
    let body = '';
    for await (const c of req) body += c;
    calls.push({ method: req.method!, url: req.url!, headers: req.headers, body, at: Date.now() });
    if (req.method === 'DELETE') {
      res.writeHead(204);
      return res.end();
    }
    if (throttled) {
      res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' });
      return res.end('{"errors":[{"status":"429"}]}');
    }
    res.writeHead(201, { 'content-type': 'application/vnd.api+json' });
    res.end(JSON.stringify({ data: { id: clientId, type: 'broker_connection', attributes: { server_id: '0', server_url: fake.url } } }));
  });
  dispatcherUrl = `http://127.0.0.1:${await listen(dispatcher, 0, '127.0.0.1')}`;
  const closed = await freePort();
  tc = await startTestClient(
    {
      BROKER_TOKEN: token,
      // Nothing listens here: the dispatcher's server_url must be used instead.
      BROKER_SERVER_URL: `http://127.0.0.1:${closed}`,
      BROKER_HA_MODE_ENABLED: 'true',
      BROKER_DISPATCHER_BASE_URL: dispatcherUrl,
      BROKER_CLIENT_ID: clientId,
      ORIGIN_URL: origin.url,
    },
    { private: [{ method: 'GET', path: '/echo/*', origin: '${ORIGIN_URL}' }], public: [] },
  );
});

after(async () => {
  await tc?.stop();
  await fake?.stop();
  await origin?.close();
  await closeServer(dispatcher);
});

test('not ready until allocated; a 429 with Retry-After is honoured', async () => {
  await waitFor('two throttled allocation calls', () => calls.filter((c) => c.method === 'POST').length >= 2, { timeoutMs: 30_000 });
  const notReady = await request(`${tc.url}/readyz`);
  assert.equal(notReady.statusCode, 503);
  await notReady.body.dump();
  assert.equal(fake.connections.length, 0, 'connected before allocation');
  const posts = calls.filter((c) => c.method === 'POST');
  assert.ok(posts[1]!.at - posts[0]!.at >= 900, 'retried before Retry-After');
  throttled = false;
  await waitFor('two identified tunnels', () => fake.open().length === 2, { timeoutMs: 30_000 });
  const res = await request(`${tc.url}/readyz`);
  assert.equal(res.statusCode, 200);
  await res.body.dump();
});

test('the allocation call has the contract path, query and body', () => {
  const post = calls.find((c) => c.method === 'POST')!;
  assert.equal(post.url, `/hidden/broker/${hashToken(token)}/connections/${clientId}?version=2022-12-01%7Eexperimental`);
  assert.equal(post.headers['content-type'], 'application/vnd.api+json');
  assert.deepEqual(JSON.parse(post.body), { data: { attributes: { deployment_location: 'snyk-broker-client', broker_token_first_char: token[0] } } });
});

test('tunnels carry server_id and connect to the server_url; response-data too', async () => {
  for (const c of fake.open()) assert.equal(c.url.searchParams.get('server_id'), '0');
  const conn = fake.open().find((c) => c.role === 'secondary')!;
  const streamingID = randomUUID();
  fake.emit(conn, 'request', { url: '/echo/ha', method: 'GET', headers: {}, streamingID });
  const r = await waitFor('response-data', () => fake.responses.get(streamingID));
  assert.equal(r.head.status, 200);
  assert.match(r.url, /\?server_id=0&connection_role=secondary$/);
});

test('the HA log lines appear at info with their fields', () => {
  const logs = tc.logs();
  const ha = logs.find((e) => e.msg === 'checking for HA mode');
  assert.equal(ha?.level, 'info');
  assert.equal(ha?.enabled, true);
  const id = logs.find((e) => e.msg === 'received server id');
  assert.equal(id?.level, 'info');
  assert.equal(id?.serverId, '0');
  const connecting = logs.find((e) => e.msg === 'broker client is connecting to broker server');
  assert.equal(connecting?.level, 'info');
  assert.equal(connecting?.serverId, '0');
  assert.match(String(connecting?.url), new RegExp(`^${fake.url}/\\?server_id=0&connection_role=(primary|secondary)$`));
});

test('a drain close sends the client back to the dispatcher', async () => {
  const before = calls.filter((c) => c.method === 'POST').length;
  for (const c of fake.open()) c.ws.close(4001, 'server-draining');
  await waitFor('a new allocation', () => calls.filter((c) => c.method === 'POST').length > before, { timeoutMs: 30_000 });
  await waitFor('tunnels back', () => fake.open().length === 2, { timeoutMs: 30_000 });
});

test('stop releases the allocation with DELETE', async () => {
  await tc.stop();
  const del = calls.find((c) => c.method === 'DELETE');
  assert.ok(del, 'no DELETE');
  assert.equal(del.url, `/hidden/broker/${hashToken(token)}/connections/${clientId}?version=2022-12-01%7Eexperimental`);
  assert.ok(!tc.lines.join('\n').includes(token), 'token in logs');
});
