import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { ProcessGroup } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startPeerServers } from '../support/peer-servers.js';
import { waitFor } from '../support/wait.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { FAILURES } from '../../src/protocol/failures.js';

/**
 * Token isolation: tokens A and B each have a client on both of two peer-routing servers, and
 * each token's clients reach their own origin. Hundreds of requests for each token, sent to
 * either server, are only ever answered through that token's clients and origin, never the
 * other's, whether a server relays them itself or forwards them to its peer; near-miss tokens
 * (one character off) find nothing.
 */
const group = new ProcessGroup();
const agent = new Agent({ connections: 32 });
const tokens = { A: randomUUID(), B: randomUUID() };
type Name = keyof typeof tokens;
const origins: Record<Name, { server: Server; url: string; seen: string[] }> = {} as never;
const serverPorts: number[] = [];

async function startNamedOrigin(name: Name) {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    req.resume();
    seen.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ origin: name, url: req.url }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

async function get(url: string) {
  const r = await request(url, { dispatcher: agent, headersTimeout: 30_000, bodyTimeout: 30_000 });
  return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
}

before(async () => {
  for (const name of ['A', 'B'] as const) origins[name] = await startNamedOrigin(name);
  const peers = await startPeerServers(group, ['0', '1']);
  serverPorts.push(peers.ports['0']!, peers.ports['1']!);
  for (const name of ['A', 'B'] as const) {
    const accept = await writeAcceptFile({ private: [{ method: 'GET', path: '/*', origin: origins[name].url }], public: [] });
    for (const [i, port] of serverPorts.entries()) {
      group.broker(`client-${name}${i}`, 'client', {
        BROKER_TOKEN: tokens[name],
        BROKER_SERVER_URL: `http://127.0.0.1:${port}`,
        BROKER_CLIENT_ID: `client-${name}${i}`,
        PORT: String(await freePort()),
        ACCEPT: accept,
        PREFLIGHT_CHECKS_ENABLED: 'false',
      });
    }
  }
  // Both tokens' clients on both servers, and each server routing to its peer.
  await waitFor(
    'every client connected',
    async () => {
      for (const port of serverPorts) for (const t of Object.values(tokens)) if ((await get(`http://127.0.0.1:${port}/connection-status/${t}`)).status !== 200) return false;
      return true;
    },
    { timeoutMs: 60_000 },
  );
  for (const port of serverPorts) {
    await waitFor(`server on ${port} forwarding to its peer`, async () => (await get(`http://127.0.0.1:${port}/broker/${tokens.A}/probe`)).headers['x-broker-served-by'] !== undefined, { timeoutMs: 30_000 });
  }
});

after(async () => {
  await group.stopAll();
  await agent.close();
  for (const o of Object.values(origins)) await new Promise<void>((resolve) => o.server.close(() => resolve()));
});

test("a token's requests are answered only through that token's clients and origin (local and peer-forwarded)", async () => {
  const N = 300;
  const jobs: Array<{ name: Name; n: number; port: number; upper: boolean }> = [];
  for (let n = 0; n < N; n++) for (const name of ['A', 'B'] as const) jobs.push({ name, n, port: serverPorts[n % 2]!, upper: n % 7 === 0 });
  const wrong: string[] = [];
  const servedBy = { local: 0, peer: 0 };
  const clientsUsed: Record<Name, Set<string>> = { A: new Set(), B: new Set() };
  let next = 0;
  await Promise.all(
    Array.from({ length: 12 }, async () => {
      while (next < jobs.length) {
        const j = jobs[next++]!;
        // Tokens are case-insensitive on the wire (the real server lowercases them).
        const t = j.upper ? tokens[j.name].toUpperCase() : tokens[j.name];
        const r = await get(`http://127.0.0.1:${j.port}/broker/${t}/iso/${j.name}/${j.n}`);
        if (r.status !== 200) {
          wrong.push(`${j.name} #${j.n}: ${r.status} ${r.body.slice(0, 120)}`);
          continue;
        }
        const body = JSON.parse(r.body) as { origin: string; url: string };
        if (body.origin !== j.name || body.url !== `/iso/${j.name}/${j.n}`) wrong.push(`${j.name} #${j.n} answered by origin ${body.origin} for ${body.url}`);
        const connection = String(r.headers['x-broker-connection'] ?? '');
        if (connection) clientsUsed[j.name].add(connection.split(':')[0]!);
        if (r.headers['x-broker-served-by'] !== undefined) servedBy.peer++;
        else servedBy.local++;
      }
    }),
  );
  console.log(`token isolation: ${jobs.length} requests, ${servedBy.local} relayed locally, ${servedBy.peer} forwarded to the peer; clients used: A ${[...clientsUsed.A].join(',')} B ${[...clientsUsed.B].join(',')}`);
  assert.deepEqual(wrong, []);
  for (const name of ['A', 'B'] as const) {
    const other = name === 'A' ? 'B' : 'A';
    assert.equal(origins[name].seen.filter((u) => u.startsWith(`/iso/${other}/`)).length, 0, `origin ${name} saw a request of token ${other}`);
    assert.equal(origins[name].seen.filter((u) => u.startsWith(`/iso/${name}/`)).length, N, `origin ${name} did not see all ${N} of its requests`);
    for (const c of clientsUsed[name]) assert.ok(c.startsWith(`client-${name}`), `token ${name} was relayed by ${c}`);
  }
  assert.ok(servedBy.peer > 0 && servedBy.local > 0, JSON.stringify(servedBy));
});

test('a token one character off, or another token, finds no connection', async () => {
  const seenBefore = origins.A.seen.length + origins.B.seen.length;
  const near = (t: string) => t.slice(0, -1) + (t.endsWith('0') ? '1' : '0');
  for (const port of serverPorts) {
    for (const t of [near(tokens.A), near(tokens.B), randomUUID(), `${tokens.A}x`, tokens.A.slice(0, -1)]) {
      const r = await get(`http://127.0.0.1:${port}/broker/${t}/iso/near`);
      assert.equal(r.status, 404, `${t}: ${r.status} ${r.body}`);
      assert.equal(r.headers['x-broker-failure'], FAILURES.NO_CONNECTION.reason);
    }
  }
  assert.equal(origins.A.seen.length + origins.B.seen.length, seenBefore, 'a near-miss token reached an origin');
  assert.ok(!group.allOutput().includes(tokens.A) && !group.allOutput().includes(tokens.B), 'a token appears in process output');
});
