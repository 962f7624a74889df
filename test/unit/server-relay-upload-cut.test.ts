// Regression (issue 6 fault suite): an answer upload cut after its head but before any body byte
// left the platform with a connection closed without a status line; it must get a clean 502.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { encodeResponseHead } from '../../src/protocol/index.js';
import { FakeTunnelClient } from '../support/fake-tunnel-client.js';
import { startInProcessServer, type InProcessServer } from '../support/in-process-server.js';
import { waitFor } from '../support/wait.js';
import { FAILURES } from '../../src/protocol/failures.js';

const T = 'b9460892-5397-48f1-8697-488769ae3797';
const servers: InProcessServer[] = [];
const clients: FakeTunnelClient[] = [];
after(async () => {
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.stop()));
});

function platform(url: string, method: string, body?: string): Promise<{ status: number; failure: unknown; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { method }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, failure: res.headers['x-broker-failure'], body: text }));
      res.on('error', (err) => resolve({ error: err.message }));
    });
    req.on('error', (err) => resolve({ error: err.message }));
    req.end(body);
  });
}

/** A client that sends the head of its answer, then dies (the connection is cut right after). */
function uploadHeadThenCut(url: string, head: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/vnd.broker.stream+octet-stream', 'transfer-encoding': 'chunked' } });
    req.on('error', () => resolve());
    req.on('close', () => resolve());
    req.write(head, () => setTimeout(() => req.destroy(), 20));
  });
}

for (const [method, env] of [
  ['POST', {}],
  ['GET', { BROKER_SERVER_RETRY_BUFFER_BYTES: '0' }],
] as const) {
  test(`${method}: an answer upload cut between its head and its first body byte gives the platform 502 tunnel-closed, not a closed connection`, async () => {
    const s = await startInProcessServer({ BROKER_SERVER_ANSWER_GRACE_MS: '300', ...env });
    servers.push(s);
    const c = new FakeTunnelClient(s.url, T, { clientId: 'only' });
    clients.push(c);
    await c.opened;
    await waitFor('connection ready', () => s.server.pool.members(T).filter((m) => m.state === 'ready').length === 1);
    const answer = platform(`${s.url}/broker/${T}/create`, method, method === 'POST' ? 'payload' : undefined);
    const event = await c.nextRequest(0);
    const streamingID = (event.args[0] as { streamingID: string }).streamingID;
    await uploadHeadThenCut(`${s.url}/response-data/${T}/${streamingID}`, encodeResponseHead({ status: 201, headers: { 'content-length': '100' } }));
    const got = await answer;
    assert.ok(!('error' in got), `the platform connection was closed without an answer: ${'error' in got ? got.error : ''}`);
    assert.equal(got.status, 502);
    assert.equal(got.failure, FAILURES.TUNNEL_CLOSED.reason);
  });
}
