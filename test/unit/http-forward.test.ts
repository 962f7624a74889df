import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import { once } from 'node:events';
import { WebSocket, WebSocketServer } from 'ws';
import { createEgress } from '../../src/http/egress.js';
import { forwardHttpRequest, forwardUpgrade, FORWARDED_HEADER } from '../../src/http/forward.js';
import { EgressError } from '../../src/http/errors.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';
import { freePort } from '../support/ports.js';
import { FAILURES } from '../../src/protocol/failures.js';

test('forwardHttpRequest streams method, body, headers and the answer to a peer, marking it forwarded', async (t) => {
  const target = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    res.writeHead(201, { 'x-peer': 'yes', 'content-type': 'application/json', connection: 'keep-alive' });
    res.end(JSON.stringify({ method: req.method, url: req.url, body: Buffer.concat(chunks).toString(), forwarded: req.headers[FORWARDED_HEADER], custom: req.headers['x-custom'] }));
  });
  const targetPort = await listen(target, 0, '127.0.0.1');
  const egress = await createEgress();
  const front = createServer((req, res) => {
    forwardHttpRequest(egress, req, res, `http://127.0.0.1:${targetPort}`, { [FORWARDED_HEADER]: 'server-0' }).catch((err: EgressError) => {
      res.writeHead(err.status, { 'x-broker-failure': err.code });
      res.end();
    });
  });
  const frontPort = await listen(front, 0, '127.0.0.1');
  t.after(async () => {
    await closeServer(front);
    await closeServer(target);
    await egress.close();
  });
  const answer = await fetch(`http://127.0.0.1:${frontPort}/broker/x/path?q=1`, { method: 'POST', body: 'payload', headers: { 'x-custom': 'c' } });
  assert.equal(answer.status, 201);
  assert.equal(answer.headers.get('x-peer'), 'yes');
  assert.deepEqual(await answer.json(), { method: 'POST', url: '/broker/x/path?q=1', body: 'payload', forwarded: 'server-0', custom: 'c' });
});

test('forwardHttpRequest to an unreachable peer rejects with a typed error before anything is written', async (t) => {
  const egress = await createEgress();
  const deadPort = await freePort();
  let caught: unknown;
  const front = createServer((req, res) => {
    forwardHttpRequest(egress, req, res, `http://127.0.0.1:${deadPort}`).catch((err) => {
      caught = err;
      res.writeHead(502);
      res.end();
    });
  });
  const frontPort = await listen(front, 0, '127.0.0.1');
  t.after(async () => {
    await closeServer(front);
    await egress.close();
  });
  const answer = await fetch(`http://127.0.0.1:${frontPort}/x`);
  assert.equal(answer.status, 502);
  assert.ok(caught instanceof EgressError);
  assert.equal(caught.code, 'DOWNSTREAM_UNREACHABLE');
});

test('forwardUpgrade carries a websocket to a peer both ways; an unreachable peer gets a 502', async (t) => {
  const target = createServer();
  const wss = new WebSocketServer({ server: target });
  let seenHeader: string | undefined;
  wss.on('connection', (ws, req) => {
    seenHeader = req.headers[FORWARDED_HEADER] as string | undefined;
    ws.on('message', (m) => ws.send(`echo:${m.toString()}`));
  });
  const targetPort = await listen(target, 0, '127.0.0.1');
  const deadPort = await freePort();
  const front = createServer();
  front.on('upgrade', (req, socket, head) => {
    const dest = req.url!.startsWith('/dead') ? `http://127.0.0.1:${deadPort}` : `http://127.0.0.1:${targetPort}`;
    void forwardUpgrade(req, socket, head, dest, { [FORWARDED_HEADER]: 'server-1' }, { unreachable: FAILURES.PEER_UNREACHABLE });
  });
  const frontPort = await listen(front, 0, '127.0.0.1');
  t.after(async () => {
    wss.close();
    await closeServer(front);
    await closeServer(target);
  });
  const ws = new WebSocket(`ws://127.0.0.1:${frontPort}/primus/tok/?EIO=4&transport=websocket`);
  await once(ws, 'open');
  ws.send('hello');
  const [reply] = await once(ws, 'message');
  assert.equal(reply.toString(), 'echo:hello');
  assert.equal(seenHeader, 'server-1');
  ws.close();

  const req = httpRequest({ host: '127.0.0.1', port: frontPort, path: '/dead', headers: { connection: 'upgrade', upgrade: 'websocket' } });
  req.end();
  const [res] = await once(req, 'response');
  assert.equal(res.statusCode, 502);
  assert.equal(res.headers['x-broker-failure'], FAILURES.PEER_UNREACHABLE.reason);
  res.resume();
});
