import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { BodyTooLargeError, clientErrorHandler, closeServer, listen, readBody, refuseBody, sendJson } from '../../src/http/server-helpers.js';
import { rawExchange, writeUntilClosed } from '../support/raw-http.js';
import { waitFor } from '../support/wait.js';
import { FAILURES, PARSER_FAILURES } from '../../src/protocol/failures.js';

const LIMIT = 1024;
const outcomes: string[] = [];

// A server that reads bodies up to LIMIT and refuses larger ones the way the broker does.
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  readBody(req, LIMIT).then(
    (body) => {
      outcomes.push(`read ${body.length}`);
      sendJson(res, 200, { bytes: body.length });
    },
    (err: Error) => {
      outcomes.push(err instanceof BodyTooLargeError ? 'too large' : `error ${err.message}`);
      if (err instanceof BodyTooLargeError) refuseBody(req, res, FAILURES.BODY_TOO_LARGE, { ok: false });
      else if (!res.headersSent) sendJson(res, 400, { ok: false });
    },
  );
});
server.headersTimeout = 500;
(server as typeof server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = 100;
server.on('clientError', clientErrorHandler(PARSER_FAILURES));
const port = await listen(server, 0, '127.0.0.1');
after(async () => {
  server.closeAllConnections();
  await closeServer(server);
});

const post = (framing: string) => `POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\n${framing}\r\n`;

test('readBody returns a body up to the limit', async () => {
  const a = await rawExchange(port, `${post('content-length: 1024\r\nconnection: close\r\n')}${'a'.repeat(1024)}`);
  assert.equal(a.status, 200);
  assert.deepEqual(JSON.parse(a.body), { bytes: 1024 });
});

test('a declared body above the limit is refused from its headers with 413, and the connection is cut after a bounded discard', async () => {
  const a = await rawExchange(port, async (socket, count) => {
    socket.write(post(`content-length: ${1024 * 1024 * 1024}\r\n`));
    await writeUntilClosed(socket, Buffer.alloc(64 * 1024), 1024 * 1024 * 1024, count);
  }, { timeoutMs: 30_000 });
  assert.equal(a.status, 413);
  assert.equal(a.headers['x-broker-failure'], FAILURES.BODY_TOO_LARGE.reason);
  assert.ok(a.closed);
  assert.ok(a.written < 256 * 1024 * 1024, `${a.written} bytes went out before the cut`);
});

test('a chunked body crossing the limit mid-stream still gets its 413 (the socket is not destroyed by the reader)', async () => {
  const a = await rawExchange(port, `${post('transfer-encoding: chunked\r\n')}400\r\n${'a'.repeat(1024)}\r\n400\r\n${'b'.repeat(1024)}\r\n`, { untilAnswer: true });
  assert.equal(a.status, 413);
  assert.equal(a.headers['x-broker-failure'], FAILURES.BODY_TOO_LARGE.reason);
});

test('a refused body that ends within the discard window leaves the connection usable', async () => {
  const second = `GET /y HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`;
  const a = await rawExchange(port, `${post('content-length: 2048\r\n')}${'a'.repeat(2048)}${second}`);
  assert.deepEqual(a.raw.match(/HTTP\/1\.1 \d{3}/g), ['HTTP/1.1 413', 'HTTP/1.1 200']);
});

test('parser refusals get a status and x-broker-failure: 431 oversized head, 400 ambiguous framing, 408 slow headers', async () => {
  const big = await rawExchange(port, `GET /x HTTP/1.1\r\nhost: a\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`);
  assert.equal(big.status, 431);
  assert.equal(big.headers['x-broker-failure'], FAILURES.HEADERS_TOO_LARGE.reason);
  const smuggle = await rawExchange(port, `${post('content-length: 5\r\ntransfer-encoding: chunked\r\n')}0\r\n\r\n`);
  assert.equal(smuggle.status, 400);
  assert.equal(smuggle.headers['x-broker-failure'], FAILURES.BAD_REQUEST.reason);
  const slow = await rawExchange(port, 'GET /x HTTP/1.1\r\nhost: a\r\n', { timeoutMs: 10_000 });
  assert.equal(slow.status, 408);
  assert.equal(slow.headers['x-broker-failure'], FAILURES.HEADERS_TIMEOUT.reason);
  for (const a of [big, smuggle, slow]) assert.ok(a.closed);
});

test('an aborted upload rejects the reader (no hang)', async () => {
  const before = outcomes.length;
  await rawExchange(port, async (socket) => {
    socket.write(`${post('content-length: 1000\r\n')}${'a'.repeat(10)}`);
    setTimeout(() => socket.destroy(), 100);
  });
  await waitFor('the reader to settle', () => outcomes.length > before, { timeoutMs: 5000 });
  assert.match(outcomes[before]!, /^error /);
});
