// The egress stack's hot-path calls (issue 5): requestAnswer (origin calls: small answers whole,
// large ones streamed) and requestBuffered (the small POST /response-data).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { createEgress, type Egress } from '../../src/http/egress.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';

/** A raw origin: each connection gets `answer` written when the request head has arrived. */
async function rawOrigin(answer: (socket: Socket) => void): Promise<{ origin: string; server: NetServer }> {
  const server = createNetServer((s) => {
    s.on('error', () => undefined);
    s.once('data', () => answer(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** An http origin answering with `handler`, and an egress stack; both closed after the test. */
async function httpOrigin(t: TestContext, handler: RequestListener): Promise<{ origin: string; egress: Egress }> {
  const server = createServer(handler);
  const port = await listen(server, 0, '127.0.0.1');
  const egress = await createEgress();
  t.after(async () => {
    server.closeAllConnections();
    await egress.close();
    await closeServer(server);
  });
  return { origin: `http://127.0.0.1:${port}`, egress };
}

async function collect(body: Buffer | Readable): Promise<Buffer> {
  if (Buffer.isBuffer(body)) return body;
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

test('requestAnswer: a small answer comes whole, headers as undici gives them (repeated ones as arrays, __proto__ stays a header)', async (t) => {
  const { origin, server } = await rawOrigin((s) =>
    s.end('HTTP/1.1 201 Created\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n__proto__: x\r\nX-Thing: y\r\nContent-Length: 5\r\n\r\nhello'),
  );
  const egress = await createEgress();
  t.after(async () => {
    await egress.close();
    server.close();
  });
  const res = await egress.requestAnswer({ origin, path: '/a?b=c', method: 'GET', headers: { 'x-in': '1' }, bufferUpTo: 64 * 1024 });
  assert.equal(res.statusCode, 201);
  assert.ok(Buffer.isBuffer(res.body));
  assert.equal(res.body.toString(), 'hello');
  assert.deepEqual(res.headers['set-cookie'], ['a=1', 'b=2']);
  assert.equal(res.headers['x-thing'], 'y');
  assert.equal(Object.getPrototypeOf(res.headers), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(res.headers, '__proto__')?.value, 'x');
});

test('requestAnswer: a large answer streams with every byte; an unknown size streams too', async (t) => {
  const big = Buffer.alloc(3 * 1024 * 1024, 0x61);
  const { origin, egress } = await httpOrigin(t, (req, res) => {
    if (req.url === '/chunked') {
      res.write('part1-');
      res.end('part2');
      return;
    }
    res.writeHead(200, { 'content-length': String(big.length) });
    res.end(big);
  });
  const res = await egress.requestAnswer({ origin, path: '/big', method: 'GET', headers: {}, bufferUpTo: 64 * 1024 });
  assert.ok(res.body instanceof Readable);
  assert.ok((await collect(res.body)).equals(big));
  const chunked = await egress.requestAnswer({ origin, path: '/chunked', method: 'GET', headers: {}, bufferUpTo: 64 * 1024 });
  assert.ok(chunked.body instanceof Readable);
  assert.equal((await collect(chunked.body)).toString(), 'part1-part2');
});

test('requestAnswer with holdUnknownMs: a small chunked answer that ends in time comes whole; a large or slow one streams every byte; one that breaks off while held gives what came, then the error', async (t) => {
  const big = Buffer.alloc(200 * 1024, 0x62);
  let secondWritten = false;
  const { origin, egress } = await httpOrigin(t, (req, res) => {
    if (req.url === '/small') {
      res.write('part1-');
      res.end('part2');
    } else if (req.url === '/big') {
      res.write(big.subarray(0, 1000));
      res.end(big.subarray(1000));
    } else if (req.url === '/slow') {
      res.write('first-');
      setTimeout(() => {
        secondWritten = true;
        res.end('second');
      }, 400);
    } else if (req.url === '/broken') {
      res.write('kept');
      setTimeout(() => res.socket?.destroy(), 5);
    }
  });
  const ask = (path: string) => egress.requestAnswer({ origin, path, method: 'GET', headers: {}, bufferUpTo: 64 * 1024, holdUnknownMs: 100 });
  const small = await ask('/small');
  assert.ok(Buffer.isBuffer(small.body), 'a small chunked answer comes whole');
  assert.equal(small.body.toString(), 'part1-part2');
  const large = await ask('/big');
  assert.ok(large.body instanceof Readable, 'past bufferUpTo it streams');
  assert.ok((await collect(large.body)).equals(big));
  const slow = await ask('/slow');
  assert.ok(slow.body instanceof Readable, 'past the hold it streams');
  assert.equal(secondWritten, false, 'resolved after the hold, not at the end of the answer');
  assert.equal((await collect(slow.body)).toString(), 'first-second');
  const broken = await ask('/broken');
  assert.ok(broken.body instanceof Readable);
  const got: Buffer[] = [];
  await assert.rejects(async () => {
    for await (const c of broken.body as Readable) got.push(c as Buffer);
  });
  assert.equal(Buffer.concat(got).toString(), 'kept');
});

test('requestAnswer: a small answer that breaks off arrives as what came, then the error; a refused connection rejects', async (t) => {
  const { origin, server } = await rawOrigin((s) => {
    s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
    setTimeout(() => s.destroy(), 50);
  });
  const egress = await createEgress();
  t.after(async () => {
    await egress.close();
    server.close();
  });
  const res = await egress.requestAnswer({ origin, path: '/', method: 'GET', headers: {}, bufferUpTo: 64 * 1024 });
  assert.equal(res.statusCode, 200);
  assert.ok(res.body instanceof Readable);
  const got: Buffer[] = [];
  await assert.rejects(async () => {
    for await (const c of res.body as Readable) got.push(c as Buffer);
  });
  assert.equal(Buffer.concat(got).toString(), 'partial');
  const closed = await rawOrigin(() => undefined);
  const deadOrigin = closed.origin;
  await new Promise<void>((r) => closed.server.close(() => r()));
  await assert.rejects(egress.requestAnswer({ origin: deadOrigin, path: '/', method: 'GET', headers: {}, bufferUpTo: 1024 }), (err: Error & { code?: string }) => err.code === 'ECONNREFUSED');
});

test('requestAnswer: destroying a streamed body stops the origin call without an unhandled error', async (t) => {
  const { origin, egress } = await httpOrigin(t, (_req, res) => {
    res.writeHead(200, { 'content-length': String(64 * 1024 * 1024) });
    const chunk = Buffer.alloc(1024 * 1024);
    const pump = () => {
      while (res.write(chunk)) {
        /* fill until backpressure */
      }
      res.once('drain', pump);
    };
    pump();
  });
  const res = await egress.requestAnswer({ origin, path: '/', method: 'GET', headers: {}, bufferUpTo: 64 * 1024 });
  const body = res.body as Readable;
  await new Promise<void>((r) => body.once('data', () => r()));
  body.destroy();
  await new Promise<void>((r) => body.once('close', () => r()));
  assert.equal(body.destroyed, true);
});

test('requestBuffered: posts one buffer, reads the answer whole, refuses an answer above its cap', async (t) => {
  let received = '';
  const { origin, egress } = await httpOrigin(t, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received = `${req.method} ${req.url} ${req.headers['content-length']} ${body}`;
      const answer = req.url === '/big' ? 'x'.repeat(2048) : '{}';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(answer.length) });
      res.end(answer);
    });
  });
  const res = await egress.requestBuffered({ origin, path: '/small?q=1', method: 'POST', headers: { 'content-type': 'text/plain' }, body: Buffer.from('payload'), timeoutMs: 10_000, maxResponseBytes: 1024 });
  assert.equal(res.statusCode, 200);
  assert.equal(res.body.toString(), '{}');
  assert.equal(received, 'POST /small?q=1 7 payload');
  await assert.rejects(
    egress.requestBuffered({ origin, path: '/big', method: 'POST', headers: {}, body: Buffer.from('p'), timeoutMs: 10_000, maxResponseBytes: 1024 }),
    (err: Error & { code?: string }) => err.code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE',
  );
});
