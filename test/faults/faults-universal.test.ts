// Fault suite, Universal Broker (issue 20 item 9), under steady mixed GET/POST platform load on
// every connection (through our server's /broker/<identifier>/...): one server of ours and our
// Universal client (processes), a fake Snyk API and one origin per connection (in-process).
//  1. Snyk's token endpoint down for 60 s (503, then connections reset) with 20 s tokens and
//     renewals every 3 s: every connection keeps serving on the tunnels it has, nothing
//     re-handshakes, the client does not exit, and it gets a new token once the endpoint is back.
//  2. Renewal refused (401, then 500) for one connection: the client drops its token and retries,
//     restarts that connection's tunnels after 3 failures in a row, the others are not touched.
//  3. Mid-traffic, one connection removed and another's identifier rotated, then the server's
//     config/reload: the untouched connection loses nothing, the rotated one serves on its new
//     identifier (the old one answers a clear failure), the removed one's tunnels close.
// Every scenario: 0 failed and 0 hung requests on the connections it does not touch, the client
// never exits, and no credential (connection tokens, CLIENT_SECRET, OAuth tokens) in any log line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { waitFor } from '../support/wait.js';
import { readyTunnels } from '../support/connection-status.js';
import { httpStatus } from '../support/http-status.js';
import { logLines } from '../support/ha-cluster.js';
import { hashToken } from '../../src/protocol/token.js';
import { startFakeSnykApi, type FakeApiCall, type FakeConnection, type FakeSnykApi, universalClientEnv } from '../support/fake-snyk-api.js';
import { assertFaultGoal, describeLoadFailures, startSteadyLoad, summaryLine, type SteadyLoad, type SteadyLoadReport } from '../support/steady-load.js';

const OUTAGE_MS = 60_000;
const TOKEN_TTL_S = 20;
const RENEWAL_MS = 3_000;
const RATE = 15;

const group = new ProcessGroup();
let api: FakeSnykApi;
let server: RunningProcess;
let client: RunningProcess;
let serverUrl: string;

interface Conn {
  name: string;
  type: 'github' | 'gitlab';
  identifier: string;
  token: string;
  envName: string;
  origin: Origin;
}
const conns: Conn[] = [];
/** Every identifier a connection had (a rotated one's old and new): tunnel tokens, never logged in clear. */
const identifiersUsed: string[] = [];
const byName = (name: string) => conns.find((c) => c.name === name)!;

function fakeConnection(c: Conn): FakeConnection {
  const host = `127.0.0.1:${c.origin.port}`;
  // Every load request goes to /snykgit/... (the `any /snykgit/*` rule of both types), whose
  // origin is the connection's GIT_CLIENT_URL: each connection's own fake origin.
  const required: Record<string, string> = c.type === 'github' ? { github_token: `\${${c.envName}}`, github_api: host, github: host } : { gitlab_token: `\${${c.envName}}`, gitlab: host };
  return { name: c.name, type: c.type, identifier: c.identifier, required, default: { git_client_url: c.origin.url } };
}

function tunnelsOf(identifier: string): Promise<number> {
  return readyTunnels(serverUrl, identifier);
}

async function waitAllTunnels(list: readonly Conn[], timeoutMs = 30_000): Promise<void> {
  await waitFor(`two tunnels for ${list.map((c) => c.name).join(', ')}`, async () => (await Promise.all(list.map((c) => tunnelsOf(c.identifier)))).every((n) => n === 2), { timeoutMs, intervalMs: 100 });
}

/** One steady load per connection, on `identifier` (default: the connection's current one). */
function loadOn(c: Conn, identifier = c.identifier): SteadyLoad {
  return startSteadyLoad(
    {
      platformUrl: (path) => `${serverUrl}/broker/${identifier}/${path}`,
      seenIds: () => {
        const seen = new Map<string, number>();
        for (const s of c.origin.seen) {
          if (s.method !== 'POST') continue;
          try {
            const id = (JSON.parse(s.body) as { id?: string }).id;
            if (id) seen.set(id, (seen.get(id) ?? 0) + 1);
          } catch {
            // not a load request
          }
        }
        return seen;
      },
    },
    { rate: RATE, path: 'snykgit/load', deadlineMs: 30_000 },
  );
}

/** Waits until every load has had `n` more answers than it had when called. */
async function waitServing(loads: ReadonlyMap<string, SteadyLoad>, n = 10): Promise<void> {
  const base = new Map([...loads].map(([k, l]) => [k, l.ok]));
  await waitFor(`every connection serving (${[...loads.keys()].join(', ')})`, () => [...loads].every(([k, l]) => l.ok >= base.get(k)! + n), { timeoutMs: 20_000, intervalMs: 100 });
}

async function stopAll(fault: string, loads: ReadonlyMap<string, SteadyLoad>): Promise<Map<string, SteadyLoadReport>> {
  const out = new Map<string, SteadyLoadReport>();
  for (const [name, l] of loads) {
    const r = await l.stop();
    out.set(name, r);
    console.log(`# ${summaryLine(`${fault}[${name}]`, r, undefined)}`);
    if (r.failed.length) console.log(`# ${describeLoadFailures(r.failed).replace(/\n/g, '\n# ')}`);
  }
  return out;
}

/** The fault suite's goal, and no failure at all (GET or POST): these connections were not touched. */
function assertUntouched(name: string, r: SteadyLoadReport): void {
  assertFaultGoal(r, (ok, msg) => assert.ok(ok, `${name}: ${msg}`));
  assert.equal(r.failed.length, 0, `${name} lost requests: ${describeLoadFailures(r.failed)}`);
  assert.ok(r.ok > 0, `${name} served nothing`);
}

function assertClientRunning(): void {
  assert.equal(client.child.exitCode, null, `the client exited; output:\n${client.output().slice(-4000)}`);
  assert.equal(client.child.signalCode, null, 'the client was killed');
}

/** How many times each identifier's tunnels identified themselves on the server so far (by hashed identifier). */
function identifies(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of logLines(server)) if (e.msg === 'client connection identified') counts.set(String(e.hashedToken), (counts.get(String(e.hashedToken)) ?? 0) + 1);
  return counts;
}
const identifyTotal = () => [...identifies().values()].reduce((a, b) => a + b, 0);

const jwtIssuedAt = (call: FakeApiCall): number => {
  const jwt = String(call.headers.authorization ?? '').split(' ')[1] ?? '';
  try {
    return (JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iat: number }).iat * 1000;
  } catch {
    return 0;
  }
};

before(async () => {
  for (const [name, type] of [['corp github', 'github'], ['corp gitlab', 'gitlab'], ['team github', 'github']] as const) {
    const envName = `TOKEN_${conns.length}`;
    conns.push({ name, type, identifier: randomUUID(), envName, token: `${type === 'github' ? 'ghp_' : 'glpat-'}${randomUUID().replace(/-/g, '')}`, origin: await startOrigin() });
  }
  identifiersUsed.push(...conns.map((c) => c.identifier));
  api = await startFakeSnykApi({ connections: [], tokenTtlSeconds: TOKEN_TTL_S });
  api.setConnections(conns.map(fakeConnection));
  const serverPort = await freePort();
  serverUrl = `http://127.0.0.1:${serverPort}`;
  server = group.broker('server', 'server', {
    PORT: String(serverPort),
    BROKER_SERVER_HOST: '127.0.0.1',
    ACCEPT: await writeAcceptFile({ public: [{ method: 'any', path: '/*' }], private: [] }),
  });
  await waitFor('server health', async () => (await httpStatus(`${serverUrl}/healthcheck`)) === 200, { timeoutMs: 30_000 });
  const clientPort = await freePort();
  client = group.broker('client', 'client', {
    ...universalClientEnv(api, serverUrl),
    BROKER_CLIENT_URL: `http://127.0.0.1:${clientPort}`,
    PORT: String(clientPort),
    AUTH_EXPIRATION_OVERRIDE: String(RENEWAL_MS),
    ...Object.fromEntries(conns.map((c) => [c.envName, c.token])),
    // The fake origins speak plain http.
    INSECURE_DOWNSTREAM: 'true',
    PREFLIGHT_CHECKS_ENABLED: 'false',
  });
  await waitAllTunnels(conns);
});

after(async () => {
  try {
    const out = group.allOutput();
    for (const c of conns) assert.ok(!out.includes(c.token), `${c.name}'s credential is in a log line`);
    for (const id of identifiersUsed) assert.ok(!out.includes(id), 'a connection identifier (tunnel token) is in a log line unmasked');
    assert.ok(!out.includes(api.clientSecret), 'CLIENT_SECRET is in a log line');
    const bearers = new Set(api.calls.map((c) => String(c.headers.authorization ?? '').split(' ')[1]).filter(Boolean));
    for (const b of bearers) assert.ok(!out.includes(b!), 'an OAuth access token is in a log line');
    console.log(`# secret scan: ${conns.length} connection credentials, ${identifiersUsed.length} identifiers, CLIENT_SECRET, ${bearers.size} OAuth tokens; ${out.split('\n').length} log lines`);
  } finally {
    await group.stopAll();
    await Promise.all([...conns.map((c) => c.origin.close()), api.close()]);
  }
});

test('token endpoint down for 60 s (503, then resets) with 20 s tokens and 3 s renewals: every connection serves, no re-handshake, a new token after', async () => {
  const loads = new Map(conns.map((c) => [c.name, loadOn(c)]));
  await waitServing(loads);
  const identifiedBefore = identifyTotal();
  const linesBefore = logLines(client).length;
  const downAt = Date.now();
  api.tokenEndpoint('down');
  // The fixed length of the outage is the scenario; meanwhile the load runs and the client must
  // try (and fail) to refresh its 20 s token at least once per half.
  await waitFor('a token request refused with 503 during the outage', () => api.calls.some((c) => c.path === '/oauth2/token' && c.at > downAt), { timeoutMs: OUTAGE_MS / 2 });
  await waitFor('half the outage', () => Date.now() - downAt >= OUTAGE_MS / 2, { timeoutMs: OUTAGE_MS, intervalMs: 200 });
  api.tokenEndpoint('reset');
  const resetAt = Date.now();
  await waitFor('a token request reset during the outage', () => api.calls.some((c) => c.path === '/oauth2/token' && c.at > resetAt), { timeoutMs: OUTAGE_MS / 2 });
  await waitFor('the end of the outage', () => Date.now() - downAt >= OUTAGE_MS, { timeoutMs: OUTAGE_MS, intervalMs: 200 });
  api.tokenEndpoint('up');
  const upAt = Date.now();
  assertClientRunning();
  // Back: a new token is fetched, and renewals carry it (the fake accepts only live tokens).
  await api.waitForCall((c) => c.path === '/oauth2/token' && c.at >= upAt, 30_000);
  const renewed = await api.waitForCall((c) => c.path.endsWith('/auth/refresh') && c.at >= upAt && jwtIssuedAt(c) >= Math.floor(upAt / 1000) * 1000, 30_000);
  await waitServing(loads);
  const reports = await stopAll('token-endpoint-down-60s', loads);
  const during = api.calls.filter((c) => c.at >= downAt && c.at < upAt);
  console.log(`# outage ${upAt - downAt} ms: ${during.filter((c) => c.path === '/oauth2/token').length} token requests, ${during.filter((c) => c.path.endsWith('/auth/refresh')).length} renewals; new token in use ${renewed.at - upAt} ms after; identifies during: ${identifyTotal() - identifiedBefore}`);
  for (const [name, r] of reports) assertUntouched(name, r);
  assert.equal(identifyTotal() - identifiedBefore, 0, 'tunnels handshook again during or after the outage');
  const lines = logLines(client).slice(linesBefore);
  assert.deepEqual(lines.filter((e) => e.msg === 'restarting the connection').map((e) => `${String(e.connection)}: ${String(e.reason)}`), [], 'a connection was restarted for want of a token');
  assert.ok(lines.some((e) => e.msg === 'tunnel auth renewal skipped: no platform token'), 'renewals came due during the outage');
  await waitAllTunnels(conns);
  assertClientRunning();
});

for (const status of [401, 500]) {
  test(`renewal refused with ${status} for one connection: its token dropped and retried, only its tunnels restarted, 0 failures elsewhere`, async () => {
    const victim = byName('corp gitlab');
    const others = conns.filter((c) => c !== victim);
    const loads = new Map(conns.map((c) => [c.name, loadOn(c)]));
    await waitServing(loads);
    const identified = identifies();
    const linesBefore = logLines(client).length;
    const callsBefore = api.calls.length;
    // Each round renews both tunnels; a 401 is retried once with a fresh token. Three rounds of
    // failures for the primary (the third restarts), two for the secondary.
    const failing = status === 401 ? 2 * 2 * 2 + 2 : 2 * 2 + 1;
    const startedAt = Date.now();
    api.failRefresh(failing, status, victim.identifier);
    const restart = await waitFor('the victim connection restarted', () => logLines(client).slice(linesBefore).find((e) => e.msg === 'restarting the connection'), { timeoutMs: 8 * RENEWAL_MS, intervalMs: 100 });
    const restartedAt = Date.now();
    assert.equal(restart.connection, victim.name, `restarted ${String(restart.connection)}: ${String(restart.reason)}`);
    // Its new tunnels identify on the server.
    await waitFor('the victim identified again', () => (identifies().get(hashToken(victim.identifier)) ?? 0) >= (identified.get(hashToken(victim.identifier)) ?? 0) + 2, { timeoutMs: 20_000, intervalMs: 100 });
    await waitAllTunnels(conns);
    await waitServing(loads);
    const reports = await stopAll(`renewal-${status}`, loads);
    const now = identifies();
    const newCalls = api.calls.slice(callsBefore);
    const tokenCalls = newCalls.filter((c) => c.path === '/oauth2/token' && c.at >= startedAt).length;
    const restarts = logLines(client).slice(linesBefore).filter((e) => e.msg === 'restarting the connection');
    // The refusals before the restart: all of them were used up (a 401 is retried once, with a new token).
    const refused = newCalls.filter((c) => c.path.endsWith('/auth/refresh') && c.path.includes(victim.identifier) && c.at >= startedAt && c.at <= restartedAt);
    const bearersUsed = new Set(refused.map((c) => String(c.headers.authorization)));
    console.log(`# renewal ${status}: restart ${restartedAt - startedAt} ms after the first refusal (${String(restart.reason)}); ${refused.length} renewal calls refused with ${bearersUsed.size} tokens; ${tokenCalls} token requests; identifies: ${conns.map((c) => `${c.name} +${(now.get(hashToken(c.identifier)) ?? 0) - (identified.get(hashToken(c.identifier)) ?? 0)}`).join(', ')}`);
    for (const c of others) assertUntouched(c.name, reports.get(c.name)!);
    // The restarted connection's new tunnels open before the old drain: it loses nothing either.
    assertUntouched(victim.name, reports.get(victim.name)!);
    assert.deepEqual(restarts.map((e) => e.connection), [victim.name], 'only the victim restarts, once');
    for (const c of others) assert.equal(now.get(hashToken(c.identifier)) ?? 0, identified.get(hashToken(c.identifier)) ?? 0, `${c.name}'s tunnels handshook again`);
    assert.ok(refused.length >= failing, `${refused.length} refused renewals before the restart, expected ${failing}`);
    if (status === 401) {
      assert.ok(tokenCalls >= 1, 'a 401 drops the token: a new one is fetched');
      assert.ok(bearersUsed.size >= 2, 'the renewal after a 401 carries a new token');
    }
    assertClientRunning();
  });
}

test('config/reload mid-traffic: one connection removed, another rotated; the untouched one loses nothing, the old identifier fails clearly', async () => {
  const untouched = byName('corp github');
  const rotated = byName('corp gitlab');
  const removed = byName('team github');
  const loads = new Map(conns.map((c) => [c.name, loadOn(c)]));
  await waitServing(loads);
  const oldIdentifier = rotated.identifier;
  const newIdentifier = randomUUID();
  identifiersUsed.push(newIdentifier);
  api.setConnections([fakeConnection(untouched), fakeConnection({ ...rotated, identifier: newIdentifier })]);
  const reloadAt = Date.now();
  const ack = await request(`${serverUrl}/service/${untouched.identifier}/config/reload`, { reset: true });
  assert.equal(ack.statusCode, 200);
  assert.deepEqual(await ack.body.json(), { ok: true, msg: 'Synchronizing Config.' });
  await waitFor('the rotated identifier has its tunnels', async () => (await tunnelsOf(newIdentifier)) === 2, { timeoutMs: 20_000, intervalMs: 100 });
  const movedAt = Date.now();
  rotated.identifier = newIdentifier;
  await waitFor('the old identifier and the removed connection have no tunnel', async () => (await tunnelsOf(oldIdentifier)) === 0 && (await tunnelsOf(removed.identifier)) === 0, { timeoutMs: 30_000, intervalMs: 100 });
  const closedAt = Date.now();
  // The platform moves to the new identifier; the load there must not lose anything.
  const onNew = loadOn(rotated, newIdentifier);
  await waitFor('the new identifier serving', () => onNew.ok >= 20, { timeoutMs: 20_000, intervalMs: 100 });
  await waitServing(new Map([[untouched.name, loads.get(untouched.name)!]]));
  const reports = await stopAll('reload-remove-rotate', new Map([...loads, [`${rotated.name} (new identifier)`, onNew]]));
  console.log(`# reload: new tunnels ${movedAt - reloadAt} ms after the reload, old ones closed ${closedAt - reloadAt} ms after`);
  assertUntouched(untouched.name, reports.get(untouched.name)!);
  assertUntouched(`${rotated.name} (new identifier)`, reports.get(`${rotated.name} (new identifier)`)!);
  // The old identifier and the removed connection: every failure is a clear answer, none hangs.
  for (const name of [rotated.name, removed.name]) {
    const r = reports.get(name)!;
    assert.equal(r.hung, 0, `${name}: ${r.hung} hung requests`);
    const unclear = r.failed.filter((f) => f.status < 400 || !f.reason);
    assert.deepEqual(unclear, [], `${name}: failures without a status and x-broker-failure`);
    assert.ok(r.failed.length > 0, `${name}: the old identifier still served after the reload`);
  }
  const old = await request(`${serverUrl}/broker/${oldIdentifier}/snykgit/load/get/after`, { reset: true, headersTimeout: 10_000 });
  await old.body.dump();
  console.log(`# reload: the old identifier answers ${old.statusCode} ${String(old.headers['x-broker-failure'])}`);
  assert.ok(old.statusCode >= 400 && typeof old.headers['x-broker-failure'] === 'string', `old identifier answered ${old.statusCode} ${String(old.headers['x-broker-failure'])}`);
  const fetched = api.calls.filter((c) => c.method === 'GET' && c.path.endsWith('/connections') && c.at >= reloadAt).length;
  assert.ok(fetched >= 1, 'the reload fetched the connections list');
  assertClientRunning();
});
