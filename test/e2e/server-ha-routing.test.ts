// Real snyk-broker clients in HA mode reach our 3 servers through ONE shared URL (a round-robin
// TCP balancer standing in for a Kubernetes Service without affinity). Their engine.io sessions
// start with long polling, several HTTP requests each landing on any server: routing by
// server_id (and by the server named in the sid / streamingID) keeps every tunnel on the server
// the dispatcher allocated, and answers find their way back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startBalancer, type Balancer } from '../../src/demo/balancer.js';
import { hashToken } from '../../src/protocol/index.js';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { startSnykBroker } from '../support/snyk-broker.js';
import { waitFor } from '../support/wait.js';

const SECRET = 'ha-routing-secret';
const TOKEN = randomUUID();
const group = new ProcessGroup();
const agent = new Agent({ connections: 64 });
let origin: Origin;
let balancer: Balancer;
let dir: string;
let dispatcherUrl: string;
const servers: Record<string, { port: number; proc: RunningProcess }> = {};
const clients: Array<{ proc: RunningProcess; serverId: string }> = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'server-ha-routing-'));
  origin = await startOrigin();
  const dPort = await freePort();
  dispatcherUrl = `http://127.0.0.1:${dPort}`;
  const dispatcher = group.broker('dispatcher', 'dispatcher', { PORT: String(dPort), DISPATCHER_HOST: '127.0.0.1', BROKER_INTERNAL_SECRET: SECRET });
  await dispatcher.waitForOutput('dispatcher listening', 30_000);
  // Numeric ids, as StatefulSet pods get (broker-server-N): the real client appends server_id
  // only when `serverId > -1` holds, so a non-numeric id never reaches the servers.
  for (const id of ['1', '2', '3']) {
    const port = await freePort();
    const proc = group.broker(`server-${id}`, 'server', {
      PORT: String(port),
      BROKER_SERVER_HOST: '127.0.0.1',
      BROKER_SERVER_ID: id,
      BROKER_SERVER_PEER_URL: `http://127.0.0.1:${port}`,
      DISPATCHER_URL: dispatcherUrl,
      BROKER_INTERNAL_SECRET: SECRET,
      BROKER_SERVER_ROUTING_REFRESH_MS: '300',
      BROKER_SERVER_DRAIN_GRACE_MS: '5000',
      LOG_LEVEL: process.env.HA_ROUTING_DEBUG ? 'debug' : 'info',
    });
    servers[id] = { port, proc };
  }
  await Promise.all(Object.values(servers).map((s) => s.proc.waitForOutput('broker server listening', 30_000)));
  balancer = await startBalancer(Object.values(servers).map((s) => s.port));
  await waitFor('3 live servers at the dispatcher', async () => (await internal('/internal/brokerservers')).data.filter((s: { attributes: { status: string } }) => s.attributes.status === 'live').length === 3, { timeoutMs: 30_000 });

  const accept = join(dir, 'accept.json');
  await writeFile(accept, JSON.stringify({ private: [{ method: 'GET', path: '/*', origin: '${ORIGIN_URL}' }], public: [] }));
  for (let i = 0; i < 2; i++) {
    const proc = await startSnykBroker(group, `snyk-client-${i}`, 'client', {
      BROKER_TOKEN: TOKEN,
      BROKER_SERVER_URL: `http://127.0.0.1:${balancer.port}`,
      BROKER_HA_MODE_ENABLED: 'true',
      BROKER_DISPATCHER_BASE_URL: dispatcherUrl,
      PREFLIGHT_CHECKS_ENABLED: 'false',
      PORT: String(await freePort()),
      ACCEPT: accept,
      ORIGIN_URL: origin.url,
      LOG_LEVEL: 'debug',
    });
    const received = /"serverId":"(\d)"[^\n]*"msg":"Received server id\."/;
    await proc.waitForOutput(received, 60_000);
    clients.push({ proc, serverId: received.exec(proc.output())![1]! });
  }
});

after(async () => {
  await group.stopAll();
  await balancer?.close();
  await agent.close();
  await origin?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function internal(path: string): Promise<any> {
  const res = await request(`${dispatcherUrl}${path}`, { dispatcher: agent, headers: { 'x-broker-internal-secret': SECRET } });
  return res.body.json();
}

/** brokerClientId:role of the tunnels each server holds for the token (asked directly, not through the balancer). */
async function tunnelsByServer(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const [id, s] of Object.entries(servers)) {
    if (s.proc.child.exitCode !== null || s.proc.child.signalCode !== null) continue;
    const res = await request(`http://127.0.0.1:${s.port}/connection-status/${TOKEN}`, { dispatcher: agent });
    const body = (await res.body.json()) as { clients?: Array<{ brokerClientId: string; role: string; state: string }> };
    out[id] = (body.clients ?? []).filter((c) => c.state === 'ready').map((c) => `${c.brokerClientId}:${c.role}`);
  }
  return out;
}

/** A platform GET through the shared URL, each on a fresh TCP connection so the balancer spreads them over all servers. */
async function platformGet(n: number): Promise<{ status: number; connection: string; failure?: string }> {
  try {
    const res = await request(`http://127.0.0.1:${balancer.port}/broker/${TOKEN}/echo/ha-${n}`, { dispatcher: agent, reset: true });
    const body = await res.body.text();
    if (res.statusCode === 200 && !body.includes(`/echo/ha-${n}`)) return { status: 599, connection: '', failure: 'wrong body' };
    return { status: res.statusCode, connection: String(res.headers['x-broker-connection'] ?? ''), failure: res.headers['x-broker-failure'] as string | undefined };
  } catch (err) {
    return { status: 0, connection: '', failure: (err as Error).message };
  }
}

/** Sends GETs with `concurrency` workers until `until()` holds (checked between requests); returns every result. */
async function load(concurrency: number, until: (done: number) => boolean) {
  const results: Array<Awaited<ReturnType<typeof platformGet>>> = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!until(results.length)) results.push(await platformGet(next++));
    }),
  );
  return results;
}

const failuresOf = (results: Array<{ status: number; failure?: string }>) => results.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.failure ?? ''}`);

test('two real HA clients behind one shared URL: tunnels on their allocated servers, 200+ requests all served by both', async () => {
  assert.notEqual(
    clients[0]!.serverId,
    clients[1]!.serverId,
    `the dispatcher placed the two clients on distinct servers: ${clients.map((c) => c.proc.output().split('\n').filter((l) => /server id|dispatcher/i.test(l)).join('\n')).join('\n---\n')}\n${group.all().find((p) => p.name === 'dispatcher')!.output().slice(-3000)}`,
  );
  let last: unknown;
  const placed = await waitFor(
    'each client’s 2 tunnels on its allocated server',
    async () => {
      const t = await tunnelsByServer();
      last = t;
      const ok = clients.every((c) => t[c.serverId]!.length === 2 && new Set(t[c.serverId]!.map((x) => x.split(':')[0])).size === 1);
      const total = Object.values(t).reduce((n, l) => n + l.length, 0);
      return ok && total === 4 ? t : undefined;
    },
    { timeoutMs: 60_000 },
  ).catch((err: Error) => {
    const logs = Object.entries(servers).map(([id, s]) => `--- ${id}\n${s.proc.output().split('\n').filter((l) => /tunnel|peer|identified/i.test(l)).slice(-15).join('\n')}`);
    throw new Error(`${err.message}; clients on ${clients.map((c) => c.serverId).join(',')}; last: ${JSON.stringify(last)}\n${logs.join('\n')}`);
  });
  const clientIdOn = (serverId: string) => placed[serverId]![0]!.split(':')[0]!;

  // The dispatcher sees the same: each client's tunnels reported by the server it allocated.
  await waitFor(
    'the dispatcher to see each client on its allocated server',
    async () => {
      const a = (await internal(`/internal/tokens/${hashToken(TOKEN)}/connections`)).data.attributes as {
        servers: Array<{ server_id: string; connections: Array<{ client_id: string; tunnels: number }> }>;
        allocations: Array<{ client_id: string; server_id: string }>;
      };
      return clients.every((c) => {
        const id = clientIdOn(c.serverId);
        const allocated = a.allocations.find((x) => x.client_id === id)?.server_id;
        const reporting = a.servers.filter((s) => s.connections.some((x) => x.client_id === id)).map((s) => s.server_id);
        return allocated === c.serverId && reporting.length === 1 && reporting[0] === c.serverId;
      });
    },
    { timeoutMs: 30_000 },
  );
  // Peers route to each other once the routing cache has both servers.
  await waitFor('both clients answering through the shared URL', async () => {
    const seen = new Set((await load(4, (n) => n >= 20)).filter((r) => r.status === 200).map((r) => r.connection.split(':')[0]));
    return clients.every((c) => seen.has(clientIdOn(c.serverId)));
  }, { timeoutMs: 30_000 });

  const results = await load(6, (n) => n >= 240);
  assert.deepEqual(failuresOf(results), []);
  const perClient = new Map<string, number>();
  for (const r of results) perClient.set(r.connection.split(':')[0]!, (perClient.get(r.connection.split(':')[0]!) ?? 0) + 1);
  for (const c of clients) assert.ok((perClient.get(clientIdOn(c.serverId)) ?? 0) > 20, `per client: ${JSON.stringify([...perClient])}`);
  assert.ok(!group.allOutput().includes(TOKEN), 'the token appears in process output');
});

test('kill -9 one real client under steady GET load: zero failed requests', async () => {
  const victim = clients[0]!;
  const survivorServer = clients[1]!.serverId;
  let killed = false;
  let goneAt = Infinity;
  let loadCount = 0;
  const watcher = (async () => {
    await waitFor('load running', () => loadCount >= 40, { timeoutMs: 60_000, intervalMs: 20 });
    victim.proc.kill('SIGKILL');
    killed = true;
    await waitFor('the victim’s tunnels gone', async () => (await tunnelsByServer())[victim.serverId]!.length === 0, { timeoutMs: 60_000 });
    goneAt = loadCount;
  })();
  const results = await load(4, (n) => {
    loadCount = n;
    return n >= goneAt + 100 || n > 5000;
  });
  await watcher;
  assert.ok(killed);
  assert.deepEqual(failuresOf(results), []);
  assert.ok(results.length >= 140);
  // After the kill only the survivor answers.
  const afterKill = results.slice(goneAt);
  assert.ok(afterKill.every((r) => r.connection.split(':')[0] === (afterKill[0]!.connection.split(':')[0])));
  assert.ok((await tunnelsByServer())[survivorServer]!.length === 2);
});

test('a tunnel naming a server that is down is served where it lands; the client still relays', async () => {
  const survivor = clients[1]!;
  const dead = servers[survivor.serverId]!;
  dead.proc.kill('SIGKILL');
  await dead.proc.exited;
  // The real client reconnects with the same server_id; the server it lands on cannot reach that one and serves it.
  const placed = await waitFor(
    'the survivor’s tunnels on another server',
    async () => {
      const t = await tunnelsByServer();
      const holders = Object.entries(t).filter(([, l]) => l.length > 0);
      return holders.length >= 1 && holders.reduce((n, [, l]) => n + l.length, 0) === 2 ? holders.map(([id]) => id) : undefined;
    },
    { timeoutMs: 90_000 },
  );
  assert.ok(!placed.includes(survivor.serverId));
  assert.match(survivor.proc.output(), new RegExp(`server_id=${survivor.serverId}`), 'the client still names its dead server');
  // Answers (POSTed with the dead server's id) reach the server that relayed the request.
  await waitFor('requests served again', async () => (await platformGet(-1)).status === 200, { timeoutMs: 30_000 });
  const results = await load(4, (n) => n >= 60);
  assert.deepEqual(failuresOf(results), []);
});
