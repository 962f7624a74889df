import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { ProcessGroup } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { startSnykBroker } from '../support/snyk-broker.js';
import { FAILURES } from '../../src/protocol/failures.js';

const group = new ProcessGroup();
let origin: Origin | undefined;
after(async () => {
  await group.stopAll();
  await origin?.close();
});

async function get(url: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const res = await request(url);
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

test('SIGTERM: readiness false, new requests 503 server-draining, the in-flight request finishes, exit 0; the real client comes back to a new server', async () => {
  const token = randomUUID();
  origin = await startOrigin();
  const dir = await mkdtemp(join(tmpdir(), 'server-drain-'));
  const accept = join(dir, 'client-accept.json');
  await writeFile(accept, JSON.stringify({ private: [{ method: 'GET', path: '/*', origin: '${ORIGIN_URL}' }], public: [] }));
  const port = await freePort();
  const serverUrl = `http://127.0.0.1:${port}`;
  const serverEnv = { PORT: String(port), BROKER_SERVER_DRAIN_GRACE_MS: '15000' };
  const server = group.broker('server', 'server', serverEnv);
  await server.waitForOutput('broker server listening');
  await startSnykBroker(group, 'snyk-client', 'client', {
    BROKER_TOKEN: token,
    BROKER_SERVER_URL: serverUrl,
    PORT: String(await freePort()),
    ACCEPT: accept,
    PREFLIGHT_CHECKS_ENABLED: 'false',
    ORIGIN_URL: origin.url,
  });
  await waitFor('the client connected', async () => (await get(`${serverUrl}/broker/${token}/echo/warm`)).status === 200, { timeoutMs: 60_000 });

  const slow = get(`${serverUrl}/broker/${token}/slow/3000`);
  await waitFor('the slow request reached the origin', () => origin!.seen.some((s) => s.url === '/slow/3000'));
  server.kill('SIGTERM');
  await server.waitForOutput('draining');
  const ready = await get(`${serverUrl}/readyz`);
  assert.equal(ready.status, 503);
  const refused = await get(`${serverUrl}/broker/${token}/echo/new`);
  assert.equal(refused.status, 503);
  assert.equal(refused.headers['x-broker-failure'], FAILURES.SERVER_DRAINING.reason);
  const finished = await slow;
  assert.equal(finished.status, 200, 'the in-flight request finished during the drain');
  assert.equal(JSON.parse(finished.body).slow, true);
  assert.equal(await server.exited, 0);

  // The real client was not told to stop reconnecting: it finds the replacement server on its own.
  const replacement = group.broker('server-2', 'server', serverEnv);
  await replacement.waitForOutput('broker server listening');
  await waitFor('the real client reconnected', async () => (await get(`${serverUrl}/broker/${token}/echo/back`)).status === 200, { timeoutMs: 60_000 });
  assert.ok(!group.allOutput().includes(token), 'token leaked into a log');
});
