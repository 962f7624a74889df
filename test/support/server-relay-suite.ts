import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessGroup, type RunningProcess } from './processes.js';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';
import { startOrigin, patternSha256, type Origin } from './origin.js';
import { FAILURES } from '../../src/protocol/failures.js';

/** Starts one broker client process (the real snyk-broker or ours) with `env`. */
export type ClientStarter = (group: ProcessGroup, name: string, env: Record<string, string>) => Promise<RunningProcess>;

/**
 * The relay cases every client must pass against our broker server: GET, POST with a body,
 * a 50 MiB streamed answer, blocked requests, a webhook round trip, a client restart, and no
 * token in any output. Registered as node:test tests in the calling file.
 */
export function serverRelaySuite(startClient: ClientStarter): void {
  const token = randomUUID();
  const group = new ProcessGroup();
  let origin: Origin;
  let api: Origin;
  let serverUrl: string;
  let clientPort: number;
  let client: RunningProcess;
  let clientEnv: Record<string, string>;

  async function connectedTunnels(): Promise<number> {
    const res = await fetch(`${serverUrl}/connection-status/${token}`);
    if (res.status !== 200) return 0;
    const body = (await res.json()) as { clients: Array<{ state: string }> };
    return body.clients.filter((c) => c.state === 'ready').length;
  }

  before(async () => {
    origin = await startOrigin();
    api = await startOrigin();
    const dir = await mkdtemp(join(tmpdir(), 'server-interop-'));
    const serverAccept = join(dir, 'server-accept.json');
    await writeFile(
      serverAccept,
      JSON.stringify({
        public: [
          { method: 'any', path: '/echo/*' },
          { method: 'GET', path: '/bytes/*' },
        ],
        private: [{ method: 'POST', path: '/webhook/*', origin: '${API_URL}' }],
      }),
    );
    const clientAccept = join(dir, 'client-accept.json');
    await writeFile(
      clientAccept,
      JSON.stringify({
        private: [
          { method: 'POST', path: '/echo/*', origin: '${ORIGIN_URL}' },
          { method: 'GET', path: '/*', origin: '${ORIGIN_URL}' },
        ],
        public: [{ method: 'POST', path: '/webhook/*' }],
      }),
    );
    const port = await freePort();
    serverUrl = `http://127.0.0.1:${port}`;
    const server = group.broker('server', 'server', { PORT: String(port), ACCEPT: serverAccept, API_URL: api.url, LOG_LEVEL: 'debug' });
    await server.waitForOutput('broker server listening');
    clientPort = await freePort();
    clientEnv = {
      BROKER_TOKEN: token,
      BROKER_SERVER_URL: serverUrl,
      PORT: String(clientPort),
      ACCEPT: clientAccept,
      PREFLIGHT_CHECKS_ENABLED: 'false',
      ORIGIN_URL: origin.url,
    };
    client = await startClient(group, 'client', clientEnv);
    await waitFor('both tunnels of the client', async () => (await connectedTunnels()) === 2, { timeoutMs: 60_000 });
  });

  after(async () => {
    await group.stopAll();
    await origin?.close();
    await api?.close();
  });

  test('GET relays to the origin and back', async () => {
    const res = await fetch(`${serverUrl}/broker/${token}/echo/hello?x=1`, { headers: { 'x-custom': 'abc' } });
    assert.equal(res.status, 200);
    assert.ok(res.headers.get('snyk-request-id'));
    assert.match(res.headers.get('x-broker-connection') ?? '', /:(primary|secondary)$/);
    const body = (await res.json()) as { method: string; url: string; headers: Record<string, string> };
    assert.equal(body.method, 'GET');
    assert.equal(body.url, '/echo/hello?x=1');
    assert.equal(body.headers['x-custom'], 'abc');
  });

  test('POST with a body arrives intact', async () => {
    const payload = JSON.stringify({ hello: 'world', n: [1, 2, 3] });
    const res = await fetch(`${serverUrl}/broker/${token}/echo/post`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { method: string; body: string };
    assert.equal(body.method, 'POST');
    assert.equal(body.body, payload);
  });

  test('a 50 MiB answer streams through with the right checksum', async () => {
    const size = 50 * 1024 * 1024;
    const res = await fetch(`${serverUrl}/broker/${token}/bytes/${size}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-sha256'), patternSha256(size));
    const hash = createHash('sha256');
    let received = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      received += chunk.length;
    }
    assert.equal(received, size);
    assert.equal(hash.digest('hex'), patternSha256(size));
  });

  test('blocked requests: by the server public rules (401 filter-blocked) and by the client private rules (401 FILTER_BLOCKED)', async () => {
    const serverBlocked = await fetch(`${serverUrl}/broker/${token}/not-allowed`);
    assert.equal(serverBlocked.status, 401);
    assert.equal(serverBlocked.headers.get('x-broker-failure'), FAILURES.FILTER_BLOCKED.reason);
    assert.equal(((await serverBlocked.json()) as { code: string }).code, FAILURES.FILTER_BLOCKED.code);
    const clientBlocked = await fetch(`${serverUrl}/broker/${token}/echo/delete-me`, { method: 'DELETE' });
    assert.equal(clientBlocked.status, 401);
    const body = (await clientBlocked.json()) as { code: string; reason: string };
    assert.equal(body.code, 'FILTER_BLOCKED');
    assert.ok(!origin.seen.some((s) => s.url === '/echo/delete-me'), 'the origin never saw the blocked request');
  });

  test('webhook round trip: client public rule → tunnel → our private rule → the API with X-Broker-Token', async () => {
    const before = api.seen.length;
    const res = await fetch(`http://127.0.0.1:${clientPort}/webhook/github/abc123`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-github-event': 'push' },
      body: JSON.stringify({ ref: 'refs/heads/main' }),
    });
    assert.equal(res.status, 200);
    const echoed = (await res.json()) as { url: string; body: string };
    assert.equal(echoed.url, '/webhook/github/abc123');
    assert.equal(echoed.body, JSON.stringify({ ref: 'refs/heads/main' }));
    const seen = api.seen.slice(before).find((s) => s.url === '/webhook/github/abc123');
    assert.ok(seen, 'the API received the webhook');
    assert.equal(seen.headers['x-broker-token'], token);
    assert.equal(seen.headers['x-snyk-broker'], `${token.slice(0, 4)}-...-${token.slice(-4)}`);
    assert.equal(seen.headers['x-github-event'], 'push');
  });

  test('service channel: GET /service/<token>/filters/reload is answered by the client in an ack', async () => {
    const res = await fetch(`${serverUrl}/service/${token}/filters/reload`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true, msg: 'Filters reloaded.' });
    const unknown = await fetch(`${serverUrl}/service/${token}/no-such-command`);
    assert.equal(unknown.status, 400);
  });

  test('client restart (kill -9, start again): the next request succeeds', async () => {
    client.kill('SIGKILL');
    await client.exited;
    await waitFor('the dead client to leave the pool', async () => (await connectedTunnels()) === 0, { timeoutMs: 60_000 });
    const during = await fetch(`${serverUrl}/broker/${token}/echo/during`);
    assert.equal(during.status, 503, 'within 60 s of the disconnect: 503, clients are reconnecting');
    assert.equal(during.headers.get('retry-after'), '1');
    client = await startClient(group, 'client-restarted', clientEnv);
    await waitFor('the restarted client', async () => (await connectedTunnels()) === 2, { timeoutMs: 60_000 });
    const res = await fetch(`${serverUrl}/broker/${token}/echo/after-restart`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { url: string }).url, '/echo/after-restart');
  });

  test('the token never appears in any process output', async () => {
    const output = group.allOutput();
    assert.ok(output.includes('client connection identified'), 'our server did log the connections');
    assert.ok(!output.includes(token), 'token leaked into a log');
  });
}
