// Hedging across servers (issue 14): a forward to a peer server that holds the request without
// answering (SIGSTOP: the kernel accepts, nothing answers, nothing closes) is abandoned once the
// peer misses a /livez probe, so the forwarding server can send it to its next target. A slow
// peer that answers its probes keeps the request; a POST is never abandoned.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createNetServer, type Socket } from 'node:net';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createEgress } from '../../src/http/egress.js';
import { silentLogger } from '../../src/observability/logger.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';
import { forwardToPeer, type ForwardOutcome } from '../../src/server/peer-forward.js';
import { createPeerLiveness } from '../../src/server/peer-liveness.js';

const egress = await createEgress();
const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await egress.close();
});

/** A peer that accepts connections and never answers anything (a SIGSTOPped process). */
async function hungPeer(): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createNetServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  const port = await listen(server as unknown as Parameters<typeof listen>[0], 0, '127.0.0.1');
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return `http://127.0.0.1:${port}`;
}

/** A peer whose /livez answers at once and whose other answers take `delayMs`. */
async function slowPeer(delayMs: number): Promise<{ url: string; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    req.resume();
    if (req.url === '/livez') return res.end('{"ok":true}');
    seen.push(`${req.method} ${req.url}`);
    setTimeout(() => res.end('slow answer'), delayMs);
  });
  const port = await listen(server, 0, '127.0.0.1');
  cleanups.push(() => closeServer(server));
  return { url: `http://127.0.0.1:${port}`, seen };
}

/** A forwarding front: each request is forwarded to `peerUrl`; the outcome is recorded, 'unavailable' answered 599. */
async function front(peerUrl: string, outcomes: ForwardOutcome[], probeTimeoutMs = 200): Promise<string> {
  const liveness = createPeerLiveness({ timeoutMs: probeTimeoutMs }, { egress });
  const peer = { serverId: 'p1', peerUrl, tunnels: 2 };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const result = await forwardToPeer(
        peer,
        req,
        res,
        {
          rawUrl: req.url ?? '/',
          body: chunks.length ? Buffer.concat(chunks) : undefined,
          requestId: '11111111-1111-4111-8111-111111111111',
          selfServerId: 'p0',
          timeoutMs: 30_000,
          idempotent: req.method === 'GET',
          hedge: { afterMs: 100, probe: () => liveness.probe(peer) },
        },
        { egress, logger: silentLogger() },
      );
      outcomes.push(result);
      if (result.outcome === 'unavailable') {
        res.writeHead(599);
        res.end(result.why);
      }
    })();
  });
  const port = await listen(server, 0, '127.0.0.1');
  cleanups.push(async () => {
    server.closeAllConnections();
    await closeServer(server);
  });
  return `http://127.0.0.1:${port}`;
}

test('a GET forwarded to a hung peer is abandoned after a missed probe (hedged), within about a second', async () => {
  const outcomes: ForwardOutcome[] = [];
  const url = await front(await hungPeer(), outcomes);
  const started = Date.now();
  const res = await fetch(`${url}/broker/t/repos`);
  const tookMs = Date.now() - started;
  assert.equal(res.status, 599);
  assert.match(await res.text(), /did not answer its liveness probe/);
  assert.deepEqual(outcomes, [{ outcome: 'unavailable', why: 'server p1: did not answer its liveness probe', hedged: true }]);
  assert.ok(tookMs < 1500, `took ${tookMs} ms`);
});

test('a GET forwarded to a slow peer that answers its probes is kept: no hedge', async () => {
  const outcomes: ForwardOutcome[] = [];
  const peer = await slowPeer(900);
  const url = await front(peer.url, outcomes);
  const res = await fetch(`${url}/broker/t/slow`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'slow answer');
  assert.deepEqual(outcomes, [{ outcome: 'answered' }]);
  assert.deepEqual(peer.seen, ['GET /broker/t/slow']);
});

test('a POST forwarded to a hung peer is never abandoned (it may have been relayed)', async () => {
  const outcomes: ForwardOutcome[] = [];
  const url = await front(await hungPeer(), outcomes);
  const controller = new AbortController();
  const waiting = fetch(`${url}/broker/t/issues`, { method: 'POST', body: '{"id":"x"}', signal: controller.signal }).catch((err: Error) => err);
  await new Promise((r) => setTimeout(r, 1200));
  assert.deepEqual(outcomes, [], 'the POST was given up on');
  controller.abort();
  assert.ok((await waiting) instanceof Error);
});
