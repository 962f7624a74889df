// Drain on stop: readiness drops, webhooks are still relayed while the tunnels are open (the
// Service may route them here until endpoints are updated) and refused once they close,
// in-flight relays (streamed and acked) finish, then the tunnels close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { FakeBrokerServer } from '../support/fake-broker-server.js';
import { encodeAck } from '../../src/protocol/index.js';
import { startTestClient } from '../support/client-harness.js';
import { startOrigin } from '../support/origin.js';
import { waitFor } from '../support/wait.js';
import { FAILURES } from '../../src/protocol/failures.js';

test('stop drains: not ready, webhooks relayed while a tunnel is open and 503 after, in-flight relays complete, tunnels closed', async (t) => {
  const fake = await new FakeBrokerServer().start();
  const origin = await startOrigin();
  const token = randomUUID();
  const tc = await startTestClient(
    { BROKER_TOKEN: token, BROKER_SERVER_URL: fake.url, ORIGIN_URL: origin.url, BROKER_CLIENT_DRAIN_GRACE_MS: '20000' },
    { private: [{ method: 'GET', path: '/slow/*', origin: '${ORIGIN_URL}' }], public: [{ method: 'POST', path: '/webhook/*' }] },
  );
  t.after(async () => {
    await tc.stop();
    await fake.stop();
    await origin.close();
  });
  await waitFor('two tunnels', () => fake.open().length === 2);
  const ready = await request(`${tc.url}/readyz`);
  assert.equal(ready.statusCode, 200);
  await ready.body.dump();

  const conn = fake.open().find((c) => c.role === 'primary')!;
  const streamingID = randomUUID();
  fake.emit(conn, 'request', { url: '/slow/1500', method: 'GET', headers: {}, streamingID });
  const acked = fake.call(conn, 'request', [{ url: '/slow/1200', method: 'GET', headers: {}, streamingID: '' }]);
  await waitFor('origin saw both', () => origin.seen.filter((s) => s.url.startsWith('/slow/')).length === 2);

  const stopped = tc.client.stop('SIGTERM');
  const notReady = await request(`${tc.url}/readyz`);
  assert.equal(notReady.statusCode, 503);
  assert.equal(notReady.headers['x-broker-failure'], FAILURES.CLIENT_DRAINING.reason);
  await notReady.body.dump();
  // A webhook during the drain still goes over the (open) tunnel; the fake server answers it.
  const hookAnswered = waitFor('the webhook over the tunnel', () => {
    for (const c of fake.open()) {
      const m = c.messages.find((x) => x.kind === 'event' && x.name === 'request' && x.id !== undefined && (x.args[0] as { url?: string }).url === '/webhook/during-drain');
      if (m && m.kind === 'event') {
        fake.sendRaw(c, `4${encodeAck(m.id!, [{ status: 202, headers: { 'content-type': 'application/json' }, body: '{"ok":true}' }])}`);
        return true;
      }
    }
    return false;
  });
  const hook = await request(`${tc.url}/webhook/during-drain`, { method: 'POST', body: '{}' });
  await hookAnswered;
  assert.equal(hook.statusCode, 202, 'a webhook during the drain is relayed while the tunnels are open');
  await hook.body.dump();

  const isTerminate = (m: (typeof conn.messages)[number]) => m.kind === 'event' && m.name === 'terminate' && (m.args[0] as { signal?: string }).signal === 'SIGTERM';
  await waitFor('terminate events', () => fake.open().length === 2 && fake.open().every((c) => c.messages.some(isTerminate)));
  // Both tunnels get client-event client-shutdown first (the real client's envelope), then terminate.
  for (const c of fake.open()) {
    const events = c.messages.filter((m) => m.kind === 'event' && (m.name === 'client-event' || m.name === 'terminate'));
    assert.deepEqual(events.map((m) => m.kind === 'event' && m.name), ['client-event', 'terminate'], `${c.role}: shutdown events`);
    const envelope = (events[0] as { args: unknown[] }).args[0] as { ts: unknown; event: { type: string; reason: string } };
    assert.equal(typeof envelope.ts, 'number');
    assert.ok(Math.abs((envelope.ts as number) - Date.now()) < 60_000, 'ts is a current epoch-ms timestamp');
    assert.equal(envelope.event.type, 'client-shutdown');
    assert.equal(envelope.event.reason, 'sigterm');
  }
  const [ack] = (await acked) as [{ status: number }];
  assert.equal(ack.status, 200, 'acked relay did not finish before the tunnel closed');
  // The shutdown event went out before the in-flight relay was answered, not after settling.
  const shutdownAt = conn.messages.findIndex((m) => m.kind === 'event' && m.name === 'client-event');
  const ackAt = conn.messages.findIndex((m) => m.kind === 'ack');
  assert.ok(shutdownAt >= 0 && ackAt > shutdownAt, `client-event (#${shutdownAt}) before the relay's ack (#${ackAt})`);
  await stopped;
  const streamed = fake.responses.get(streamingID);
  assert.ok(streamed, 'streamed relay did not finish');
  assert.equal(streamed.head.status, 200);
  await waitFor('tunnels closed', () => fake.open().length === 0);
  assert.ok(tc.client.tunnels.every((x) => x.state === 'closed'));
});

test('a request the server sent before it read terminate (it arrives after the drain began, with nothing in flight) is answered, not dropped', async (t) => {
  const fake = await new FakeBrokerServer().start();
  const origin = await startOrigin();
  const token = randomUUID();
  const tc = await startTestClient(
    { BROKER_TOKEN: token, BROKER_SERVER_URL: fake.url, ORIGIN_URL: origin.url, BROKER_CLIENT_DRAIN_GRACE_MS: '20000' },
    { private: [{ method: 'any', path: '/*', origin: '${ORIGIN_URL}' }], public: [] },
  );
  t.after(async () => {
    await tc.stop();
    await fake.stop();
    await origin.close();
  });
  await waitFor('two tunnels', () => fake.open().length === 2);
  const conn = fake.open().find((c) => c.role === 'primary')!;
  const stopped = tc.client.stop('SIGTERM');
  // The drain starts with no relay in flight; the server's request crosses its terminate on the wire.
  await waitFor('terminate', () => conn.messages.some((m) => m.kind === 'event' && m.name === 'terminate'), { timeoutMs: 5000, intervalMs: 5 });
  const late = [randomUUID(), randomUUID()];
  fake.emit(conn, 'request', { url: '/echo/late-get', method: 'GET', headers: {}, streamingID: late[0] });
  fake.emit(conn, 'request', { url: '/echo/late-post', method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1}', streamingID: late[1] });
  await stopped;
  for (const id of late) assert.equal(fake.responses.get(id)?.head.status, 200, `the answer to ${id} was not uploaded before the client stopped`);
});
