// Our client against our server (both as processes): relay, streamed answer, webhook, and a
// server restart the client rides through.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { request } from 'undici';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startOrigin, patternSha256, type Origin } from '../support/origin.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { waitFor } from '../support/wait.js';
import { httpStatus } from '../support/http-status.js';

const group = new ProcessGroup();
const token = randomUUID();
let origin: Origin;
let apiStandIn: Origin;
let server: RunningProcess;
let serverEnv: Record<string, string>;
let serverPort: number;
let clientPort: number;
let client: RunningProcess;

before(async () => {
  origin = await startOrigin();
  apiStandIn = await startOrigin();
  serverPort = await freePort();
  clientPort = await freePort();
  serverEnv = {
    PORT: String(serverPort),
    BROKER_SERVER_HOST: '127.0.0.1',
    ACCEPT: await writeAcceptFile({ public: [{ method: 'any', path: '/*' }], private: [{ method: 'any', path: '/*', origin: apiStandIn.url }] }),
    BROKER_SERVER_DRAIN_GRACE_MS: '3000',
  };
  server = group.broker('server', 'server', serverEnv);
  await waitFor('server health', async () => (await httpStatus(`http://127.0.0.1:${serverPort}/healthcheck`)) === 200, { timeoutMs: 30_000 });
  client = group.broker('client', 'client', {
    BROKER_TOKEN: token,
    BROKER_SERVER_URL: `http://127.0.0.1:${serverPort}`,
    PORT: String(clientPort),
    ACCEPT: await writeAcceptFile({ private: [{ method: 'any', path: '/*', origin: '${ORIGIN_URL}' }], public: [{ method: 'POST', path: '/webhook/*' }] }),
    ORIGIN_URL: origin.url,
    // Larger answers stream over the tunnel (off by default; the default is tested below).
    BROKER_CLIENT_TUNNEL_STREAMS: 'true',
  });
  await waitFor('client ready', async () => (await httpStatus(`http://127.0.0.1:${clientPort}/readyz`)) === 200, { timeoutMs: 30_000 });
  await waitFor('relay works', async () => (await httpStatus(`http://127.0.0.1:${serverPort}/broker/${token}/echo/warm`)) === 200, { timeoutMs: 30_000 });
});

after(async () => {
  try {
    assert.ok(!group.allOutput().includes(token), 'token in process output');
  } finally {
    await group.stopAll();
    await origin?.close();
    await apiStandIn?.close();
  }
});

/** Another client of our server, with a token of its own; `env` adds to or overrides its settings. */
async function extraClient(name: string, env: Record<string, string>): Promise<{ token: string; port: number; process: RunningProcess }> {
  const extraToken = randomUUID();
  const port = await freePort();
  const p = group.broker(name, 'client', {
    BROKER_TOKEN: extraToken,
    BROKER_SERVER_URL: `http://127.0.0.1:${serverPort}`,
    PORT: String(port),
    ACCEPT: await writeAcceptFile({ private: [{ method: 'any', path: '/*', origin: '${ORIGIN_URL}' }], public: [{ method: 'POST', path: '/webhook/*' }] }),
    ORIGIN_URL: origin.url,
    ...env,
  });
  return { token: extraToken, port, process: p };
}

/** The client's broker_client_answers_total lines. */
async function answerCounts(port: number): Promise<string> {
  const metrics = await (await request(`http://127.0.0.1:${port}/metrics`)).body.text();
  return metrics.split('\n').filter((l) => l.startsWith('broker_client_answers_total')).join('\n');
}

test('relays a GET and a 20 MiB stream through our server', async () => {
  const res = await request(`http://127.0.0.1:${serverPort}/broker/${token}/echo/ours?q=1`);
  assert.equal(res.statusCode, 200);
  assert.equal(((await res.body.json()) as { url: string }).url, '/echo/ours?q=1');
  const size = 20 * 1024 * 1024;
  const big = await request(`http://127.0.0.1:${serverPort}/broker/${token}/bytes/${size}`);
  const hash = createHash('sha256');
  for await (const c of big.body) hash.update(c as Buffer);
  assert.equal(hash.digest('hex'), patternSha256(size));
  // Our server offers answers over the tunnel: a small one goes as a frame, the 20 MiB one as a stream with flow control.
  const small = await request(`http://127.0.0.1:${serverPort}/broker/${token}/bytes/1000`);
  assert.equal(createHash('sha256').update(Buffer.from(await small.body.arrayBuffer())).digest('hex'), patternSha256(1000));
  const answers = await answerCounts(clientPort);
  assert.match(answers, /broker_client_answers_total\{via="tunnel"\} [1-9]/);
  assert.match(answers, /broker_client_answers_total\{via="tunnel-stream"\} [1-9]/);
  assert.doesNotMatch(answers, /broker_client_answers_total\{via="response-data"\}/);
});

test('by default a small answer goes as one frame and a large one by POST /response-data', async () => {
  const { token: t, port, process: p } = await extraClient('client-defaults', {});
  await waitFor('relay', async () => (await httpStatus(`http://127.0.0.1:${serverPort}/broker/${t}/bytes/100`)) === 200, { timeoutMs: 30_000, intervalMs: 200 });
  const size = 5 * 1024 * 1024;
  const big = await request(`http://127.0.0.1:${serverPort}/broker/${t}/bytes/${size}`);
  const hash = createHash('sha256');
  for await (const c of big.body) hash.update(c as Buffer);
  assert.equal(hash.digest('hex'), patternSha256(size));
  const answers = await waitFor('both answers counted', async () => {
    const text = await answerCounts(port);
    return /via="tunnel"\} [1-9]/.test(text) && /via="response-data"\} [1-9]/.test(text) ? text : undefined;
  }, { timeoutMs: 10_000, intervalMs: 50 }).catch(async () => answerCounts(port));
  assert.match(answers, /broker_client_answers_total\{via="tunnel"\} [1-9]/);
  assert.match(answers, /broker_client_answers_total\{via="response-data"\} [1-9]/);
  assert.doesNotMatch(answers, /via="tunnel-stream"/);
  assert.equal(await p.stop(), 0);
});

test('BROKER_CLIENT_TUNNEL_ANSWERS=false: every answer goes by POST /response-data, even to our server', async () => {
  const { token: offToken, port, process: p } = await extraClient('client-no-tunnel-answers', { BROKER_CLIENT_TUNNEL_ANSWERS: 'false' });
  await waitFor('relay', async () => (await httpStatus(`http://127.0.0.1:${serverPort}/broker/${offToken}/bytes/100`)) === 200, { timeoutMs: 30_000, intervalMs: 200 });
  // The platform has its answer as soon as the upload's head arrives; the client counts it when its POST ends.
  const answers = await waitFor('the answer counted', async () => {
    const text = await answerCounts(port);
    return /broker_client_answers_total\{via="response-data"\} [1-9]/.test(text) ? text : undefined;
  }, { timeoutMs: 10_000, intervalMs: 50 }).catch(async () => answerCounts(port));
  assert.match(answers, /broker_client_answers_total\{via="response-data"\} [1-9]/);
  assert.doesNotMatch(answers, /broker_client_answers_total\{via="tunnel"\}/);
  assert.equal(await p.stop(), 0);
  assert.ok(!p.output().includes(offToken));
});

test('a platform that stops reading a large answer stops the origin read too (credit windows), and nothing is lost', async () => {
  const size = 128 * 1024 * 1024;
  const path = `/bytes/${size}?flow=${randomUUID()}`;
  // A raw platform socket, so nothing is read until the test says so (undici would read ahead).
  const { Socket } = await import('node:net');
  const socket = new Socket();
  await new Promise<void>((resolve, reject) => socket.once('error', reject).connect(serverPort, '127.0.0.1', resolve));
  socket.pause();
  try {
    socket.write(`GET /broker/${token}${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`);
    // The origin comes to wait for its reader, and stays waiting: each stage holds only its window.
    let last = -1;
    const stalled = await waitFor('the origin to stall while the platform reads nothing', () => {
      const p = origin.streams.get(path);
      if (!p?.waiting) return undefined;
      const same = p.written === last;
      last = p.written;
      return same ? p : undefined;
    }, { timeoutMs: 60_000, intervalMs: 1000 });
    // Without flow control the server would take the whole answer into memory and the origin would finish.
    assert.ok(stalled.written < 64 * 1024 * 1024, `origin wrote ${stalled.written} of ${size} bytes while the platform read none`);
    const hash = createHash('sha256');
    let head = '';
    let bodyBytes = 0;
    let headerDone = false;
    const done = new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        if (!headerDone) {
          head += chunk.toString('latin1');
          const at = head.indexOf('\r\n\r\n');
          if (at < 0) return;
          headerDone = true;
          const rest = Buffer.from(head.slice(at + 4), 'latin1');
          head = head.slice(0, at);
          chunk = rest;
        }
        bodyBytes += chunk.length;
        hash.update(chunk);
      });
      socket.once('end', resolve);
      socket.once('error', reject);
    });
    socket.resume();
    await done;
    assert.match(head, /^HTTP\/1\.1 200/);
    assert.equal(bodyBytes, size);
    assert.equal(hash.digest('hex'), patternSha256(size));
  } finally {
    socket.destroy();
  }
});

test('a webhook round trip through our server', async () => {
  const res = await request(`http://127.0.0.1:${clientPort}/webhook/github/ours`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
  assert.equal(res.statusCode, 200);
  const echo = (await res.body.json()) as { url: string; body: string };
  assert.equal(echo.url, '/webhook/github/ours');
  assert.equal(echo.body, '{"a":1}');
});

test('the client reconnects after our server restarts', async () => {
  assert.equal(await server.stop(), 0);
  server = group.broker('server-2', 'server', serverEnv);
  await waitFor('relay after restart', async () => (await httpStatus(`http://127.0.0.1:${serverPort}/broker/${token}/echo/again`)) === 200, { timeoutMs: 60_000, intervalMs: 300 });
});

test('a long-polling client works with our server', async () => {
  const { token: pollingToken, port, process: p } = await extraClient('client-polling', { BROKER_CLIENT_TRANSPORT: 'polling' });
  await waitFor('polling relay', async () => (await httpStatus(`http://127.0.0.1:${serverPort}/broker/${pollingToken}/echo/polled`)) === 200, { timeoutMs: 60_000, intervalMs: 300 });
  assert.equal(await httpStatus(`http://127.0.0.1:${serverPort}/broker/${pollingToken}/bytes/100`), 200);
  const hook = await request(`http://127.0.0.1:${port}/webhook/github/polled`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  assert.equal(hook.statusCode, 200);
  await hook.body.dump();
  // Long-polling cannot carry binary frames: answers go by POST.
  const answers = await answerCounts(port);
  assert.doesNotMatch(answers, /broker_client_answers_total\{via="tunnel"\}/);
  assert.match(answers, /broker_client_answers_total\{via="response-data"\} [1-9]/);
  assert.equal(await p.stop(), 0);
  assert.ok(!p.output().includes(pollingToken));
});

test('a client SIGTERM lets an in-flight request finish, then exits 0', async () => {
  const pending = request(`http://127.0.0.1:${serverPort}/broker/${token}/slow/2000`);
  await waitFor('origin got the slow request', () => origin.seen.some((x) => x.url === '/slow/2000'), { timeoutMs: 30_000 });
  const exited = client.stop();
  const res = await pending;
  assert.equal(res.statusCode, 200);
  assert.deepEqual(await res.body.json(), { slow: true });
  assert.equal(await exited, 0);
  assert.match(client.output(), /broker client stopped/);
});
