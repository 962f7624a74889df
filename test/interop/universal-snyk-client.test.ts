// The real snyk-broker 5.22.14 client in Universal Broker mode, run as Snyk's GA image runs it
// (UNIVERSAL_BROKER_ENABLED, UNIVERSAL_BROKER_GA, SNYK_DISPATCHER_URL_PREFIX=/hidden/brokers),
// against our broker server and a fake Snyk API: two connections of different types (github,
// gitlab) from one deployment. With mandatory auth (the mode Snyk's own servers run for GA
// clients) everything works end to end, config/reload included. Without it the GA client's
// answer uploads go to /hidden/brokers/response-data, which our server (like snyk-broker's)
// only serves under mandatory auth; a pre-GA Universal client (no UNIVERSAL_BROKER_GA) works.
//
// The package cannot run in Universal mode as installed (no config.default.json, no
// defaultFilters/): each client runs from a private project root (test/support/snyk-universal-root.ts),
// skipped without ../shared/snyk-broker-data. It runs on Node 20 (snykBrokerNode()).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { request } from 'undici';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { waitFor } from '../support/wait.js';
import { httpStatus } from '../support/http-status.js';
import { startFakeSnykApi, type FakeConnection, type FakeSnykApi } from '../support/fake-snyk-api.js';
import { makeSnykUniversalRoot, SNYK_UNIVERSAL_SKIP, type SnykUniversalRoot } from '../support/snyk-universal-root.js';

const GH_TOKEN = `ghp_${randomUUID().replace(/-/g, '')}`;
const GL_TOKEN = `glpat-${randomUUID().replace(/-/g, '')}`;
/** How Snyk asks for a GitLab call: the token as a reference the client substitutes (x-broker-var-sub). */
const GITLAB_HEADERS = { 'private-token': '${GITLAB_TOKEN}', 'x-broker-var-sub': 'private-token' };

interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  const r = await request(url, { headers, reset: true });
  return { status: r.statusCode, body: await r.body.text(), headers: r.headers };
}

/** The tunnels of `identifier` on our server that are ready, with the client id they were opened with. */
async function tunnels(serverUrl: string, identifier: string): Promise<Array<{ brokerClientId: string; role: string; version: string }>> {
  try {
    const r = await get(`${serverUrl}/connection-status/${identifier}`);
    if (r.status !== 200) return [];
    return (JSON.parse(r.body) as { clients: Array<{ state: string; brokerClientId: string; role: string; version: string }> }).clients.filter((c) => c.state === 'ready');
  } catch {
    return [];
  }
}

function connections(github: Origin, gitlab: Origin, ids: { gh: string; gl: string }, withGitlab = true): FakeConnection[] {
  return [
    { name: 'corp github', type: 'github', identifier: ids.gh, required: { github_token: '${GH_TOKEN}', github_api: `127.0.0.1:${github.port}`, broker_client_url: 'http://127.0.0.1:8000' } },
    ...(withGitlab
      ? [{ name: 'corp gitlab', type: 'gitlab', identifier: ids.gl, required: { gitlab_token: '${GL_TOKEN}', gitlab: `127.0.0.1:${gitlab.port}`, broker_client_url: 'http://127.0.0.1:8000' } }]
      : []),
  ];
}

/** The real client's environment, as the snyk/broker:universal image and the Helm chart set it. */
function snykClientEnv(api: FakeSnykApi, serverUrl: string, port: number, ga: boolean): Record<string, string> {
  return {
    UNIVERSAL_BROKER_ENABLED: 'true',
    ...(ga ? { UNIVERSAL_BROKER_GA: 'true', SNYK_DISPATCHER_URL_PREFIX: '/hidden/brokers' } : {}),
    DEPLOYMENT_ID: api.deploymentId,
    CLIENT_ID: api.clientId,
    CLIENT_SECRET: api.clientSecret,
    API_BASE_URL: api.url,
    BROKER_SERVER_URL: serverUrl,
    PORT: String(port),
    GH_TOKEN,
    GL_TOKEN,
    // The origins speak plain http: the Universal rules' origins are https://${GITHUB_API} etc.
    // (This also turns the fake API's URLs to http, which they are anyway.)
    INSECURE_DOWNSTREAM: 'true',
    PREFLIGHT_CHECKS_ENABLED: 'false',
    LOG_LEVEL: 'debug',
  };
}

/** Our server on a free port, letting every platform request through to the client (which filters). */
async function startOurServer(group: ProcessGroup, env: Record<string, string>, port?: number): Promise<{ server: RunningProcess; url: string; acceptDir: string }> {
  port ??= await freePort();
  const url = `http://127.0.0.1:${port}`;
  const accept = await writeAcceptFile({ public: [{ method: 'any', path: '/*' }], private: [] });
  const server = group.broker('server', 'server', { PORT: String(port), BROKER_SERVER_HOST: '127.0.0.1', LOG_LEVEL: 'debug', ACCEPT: accept, ...env });
  await waitFor('our server health', async () => (await httpStatus(`${url}/healthcheck`)) === 200, { timeoutMs: 30_000 });
  return { server, url, acceptDir: dirname(accept) };
}

function assertNoSecrets(out: string, api: FakeSnykApi): void {
  for (const secret of [GH_TOKEN, GL_TOKEN, api.clientSecret]) assert.ok(!out.includes(secret), 'a credential is in our server log');
  for (const call of api.calls) {
    const bearer = String(call.headers.authorization ?? '').split(' ')[1];
    if (bearer) assert.ok(!out.includes(bearer), 'an OAuth access token is in our server log');
  }
}

describe('the real GA Universal client against our server with mandatory auth', { skip: SNYK_UNIVERSAL_SKIP }, () => {
  const group = new ProcessGroup();
  const ids = { gh: randomUUID(), gl: randomUUID() };
  let github: Origin;
  let gitlab: Origin;
  let api: FakeSnykApi;
  let root: SnykUniversalRoot;
  let server: RunningProcess;
  let serverUrl: string;
  let acceptDir: string | undefined;
  let client: RunningProcess;

  before(async () => {
    github = await startOrigin();
    gitlab = await startOrigin();
    const serverPort = await freePort();
    // The client renews its tunnels' auth at Snyk's API, which passes the call on to the broker server.
    api = await startFakeSnykApi({ connections: [], refreshUrl: `http://127.0.0.1:${serverPort}` });
    api.setConnections(connections(github, gitlab, ids));
    root = await makeSnykUniversalRoot();
    ({ server, url: serverUrl, acceptDir } = await startOurServer(group, { BROKER_SERVER_MANDATORY_AUTH_ENABLED: 'true', GATEWAY_HOSTNAME: api.url }, serverPort));
    // Auth renewal every 2 s instead of 10 min.
    client = root.startClient(group, 'snyk-ub-client', { ...snykClientEnv(api, serverUrl, await freePort(), true), AUTH_EXPIRATION_OVERRIDE: '2000' });
    await waitFor('two tunnels for each connection', async () => (await tunnels(serverUrl, ids.gh)).length === 2 && (await tunnels(serverUrl, ids.gl)).length === 2, { timeoutMs: 60_000 });
  });

  after(async () => {
    try {
      if (server) assertNoSecrets(server.output(), api);
    } finally {
      await group.stopAll();
      await Promise.all([github?.close(), gitlab?.close(), api?.close(), root?.remove(), acceptDir && rm(acceptDir, { recursive: true, force: true })]);
    }
  });

  test("its tunnels identify at our server: each handshake's bearer is validated at the gateway, for both roles of both connections", async () => {
    const clientIds = new Set<string>();
    for (const identifier of [ids.gh, ids.gl]) {
      const ready = await tunnels(serverUrl, identifier);
      assert.deepEqual(ready.map((t) => t.role).sort(), ['primary', 'secondary']);
      for (const t of ready) clientIds.add(t.brokerClientId);
      // The npm package reports version "local": its dist/package.json has no version field.
      assert.ok(ready.every((t) => t.version === 'local'), JSON.stringify(ready));
      const validations = api.calls.filter((c) => c.path === `/hidden/brokers/connections/${identifier}/auth/validate`);
      assert.ok(validations.length >= 2, `validate calls for ${identifier}: ${validations.length}`);
      for (const v of validations) {
        assert.match(String(v.headers.authorization), /^bearer \S+\.\S+\.\S+$/i);
        assert.equal(v.query.get('version'), '2024-02-08~experimental');
      }
      assert.ok(validations.every((v) => clientIds.has((JSON.parse(v.body) as { data: { attributes: { broker_client_id: string } } }).data.attributes.broker_client_id)));
    }
    assert.equal(clientIds.size, 1, 'one broker client id for the whole process');
    assert.match(server.output(), /"mode":"universal"[^\n]*client connection identified/);
  });

  test('platform requests reach the right origin with the right credential, and the answers come back through /hidden/brokers/response-data', async () => {
    const gh = await get(`${serverUrl}/broker/${ids.gh}/user/repos`);
    assert.equal(gh.status, 200, gh.body);
    const atGithub = github.seen.at(-1)!;
    assert.equal(atGithub.url, '/user/repos');
    assert.equal(atGithub.headers.authorization, `token ${GH_TOKEN}`);

    const gl = await get(`${serverUrl}/broker/${ids.gl}/api/v4/projects`, GITLAB_HEADERS);
    assert.equal(gl.status, 200, gl.body);
    const atGitlab = gitlab.seen.at(-1)!;
    assert.equal(atGitlab.url, '/api/v4/projects');
    assert.equal(atGitlab.headers['private-token'], GL_TOKEN);
    assert.ok(!JSON.stringify(gitlab.seen).includes(GH_TOKEN), 'the GitHub token never goes to GitLab');
    assert.ok(!JSON.stringify(github.seen).includes(GL_TOKEN), 'the GitLab token never goes to GitHub');

    // The answers were uploads (not acks), checked by our server against the tunnel's JWT azp.
    const metrics = await get(`${serverUrl}/metrics`);
    const accepted = /broker_server_auth_checks_total\{kind="response-data",outcome="accepted"\} (\d+)/.exec(metrics.body);
    assert.ok(accepted && Number(accepted[1]) >= 2, `response-data checks: ${accepted?.[0]}`);
    assert.match(client.output(), /\/hidden\/brokers\/response-data\//);
    assert.doesNotMatch(client.output(), /unexpected HTTP response POSTing data/);
  });

  test('a path the github rules do not allow is refused by the client', async () => {
    const refused = await get(`${serverUrl}/broker/${ids.gh}/user/keys/1`, {});
    assert.equal(refused.status, 401, refused.body);
    assert.ok(!github.seen.some((s) => s.url === '/user/keys/1'));
  });

  test('its auth renewals (every tunnel, through the API to our server) are accepted and the tunnels stay', async () => {
    for (const identifier of [ids.gh, ids.gl]) {
      for (const role of ['primary', 'secondary']) {
        const call = await api.waitForCall((c) => c.path === `/hidden/brokers/connections/${identifier}/auth/refresh` && c.query.get('connection_role') === role, 15_000);
        assert.match(String(call.headers.authorization), /^bearer \S+$/i);
      }
    }
    await waitFor('four accepted refreshes at our server', async () => {
      const m = /broker_server_auth_checks_total\{kind="refresh",outcome="accepted"\} (\d+)/.exec((await get(`${serverUrl}/metrics`)).body);
      return m && Number(m[1]) >= 4;
    }, { timeoutMs: 15_000 });
    assert.doesNotMatch(client.output(), /Failed to renew connection/);
    assert.equal((await tunnels(serverUrl, ids.gh)).length, 2);
    assert.equal((await tunnels(serverUrl, ids.gl)).length, 2);
  });

  test("our server's config/reload makes it sync: a connection removed from the deployment closes its tunnels, the other keeps working", async () => {
    const listsBefore = api.calls.filter((c) => c.method === 'GET' && c.path.endsWith('/connections')).length;
    api.setConnections(connections(github, gitlab, ids, false));
    const ack = await get(`${serverUrl}/service/${ids.gh}/config/reload`);
    assert.equal(ack.status, 200, ack.body);
    assert.deepEqual(JSON.parse(ack.body), { ok: true, msg: 'Synchronizing Config.' });
    await waitFor('the gitlab tunnels to close', async () => (await tunnels(serverUrl, ids.gl)).length === 0, { timeoutMs: 30_000 });
    assert.ok(api.calls.filter((c) => c.method === 'GET' && c.path.endsWith('/connections')).length > listsBefore, 'the reload re-fetched the connections');
    assert.equal((await tunnels(serverUrl, ids.gh)).length, 2);
    const gh = await get(`${serverUrl}/broker/${ids.gh}/user/repos`);
    assert.equal(gh.status, 200, gh.body);
    // The client keeps its connections in <project root>/config.universal.json.
    const written = JSON.parse(await readFile(root.universalConfigFile, 'utf8')) as { CONNECTIONS?: Record<string, unknown> };
    assert.deepEqual(Object.keys(written.CONNECTIONS ?? {}), ['corp github']);
  });

  test("snyk-broker 5.22.14 bug, as seen here: a removed connection's sockets go on renewing their auth (the timers are never cleared), our server refuses them (401, as snyk-broker's server does) and after 3 failures the whole client exits", async () => {
    await waitFor('the client to exit', () => client.child.exitCode !== null, { timeoutMs: 30_000 });
    assert.equal(client.child.exitCode, 1);
    assert.match(client.output(), /"role":"(primary|secondary)"[^\n]*Failed to renew connection 3 consecutive times\. Exiting/);
    const metrics = (await get(`${serverUrl}/metrics`)).body;
    const unknown = /broker_server_auth_checks_total\{kind="refresh",outcome="auth-unknown-tunnel"\} (\d+)/.exec(metrics);
    assert.ok(unknown && Number(unknown[1]) >= 3, `refreshes refused as auth-unknown-tunnel: ${unknown?.[0]}`);
    const late = api.calls.filter((c) => c.path === `/hidden/brokers/connections/${ids.gl}/auth/refresh`).length;
    assert.ok(late >= 3, `renewals for the removed connection: ${late}`);
  });
});

describe('the real Universal client against our server without mandatory auth', { skip: SNYK_UNIVERSAL_SKIP }, () => {
  const group = new ProcessGroup();
  const gaIds = { gh: randomUUID(), gl: randomUUID() };
  const preGaIds = { gh: randomUUID(), gl: randomUUID() };
  let github: Origin;
  let gitlab: Origin;
  let gaApi: FakeSnykApi;
  let preGaApi: FakeSnykApi;
  const roots: SnykUniversalRoot[] = [];
  let server: RunningProcess;
  let serverUrl: string;
  let acceptDir: string | undefined;
  let gaClient: RunningProcess;

  before(async () => {
    github = await startOrigin();
    gitlab = await startOrigin();
    gaApi = await startFakeSnykApi({ connections: [] });
    gaApi.setConnections(connections(github, gitlab, gaIds));
    preGaApi = await startFakeSnykApi({ connections: [] });
    preGaApi.setConnections(connections(github, gitlab, preGaIds));
    roots.push(await makeSnykUniversalRoot(), await makeSnykUniversalRoot());
    // A short platform deadline: the GA client's lost answers end in a 504 quickly.
    ({ server, url: serverUrl, acceptDir } = await startOurServer(group, { BROKER_SERVER_REQUEST_TIMEOUT_MS: '4000' }));
    gaClient = roots[0]!.startClient(group, 'snyk-ub-ga-client', snykClientEnv(gaApi, serverUrl, await freePort(), true));
    roots[1]!.startClient(group, 'snyk-ub-client', snykClientEnv(preGaApi, serverUrl, await freePort(), false));
    await waitFor('two tunnels for each connection of both clients', async () => {
      for (const id of [gaIds.gh, gaIds.gl, preGaIds.gh, preGaIds.gl]) if ((await tunnels(serverUrl, id)).length !== 2) return false;
      return true;
    }, { timeoutMs: 60_000 });
  });

  after(async () => {
    try {
      if (server) {
        assertNoSecrets(server.output(), gaApi);
        assertNoSecrets(server.output(), preGaApi);
      }
    } finally {
      await group.stopAll();
      await Promise.all([github?.close(), gitlab?.close(), gaApi?.close(), preGaApi?.close(), ...roots.map((r) => r.remove()), acceptDir && rm(acceptDir, { recursive: true, force: true })]);
    }
  });

  test('a Universal client without UNIVERSAL_BROKER_GA relays both connections, answering by plain /response-data', async () => {
    const gh = await get(`${serverUrl}/broker/${preGaIds.gh}/user/repos`);
    assert.equal(gh.status, 200, gh.body);
    assert.equal(github.seen.at(-1)!.headers.authorization, `token ${GH_TOKEN}`);
    const gl = await get(`${serverUrl}/broker/${preGaIds.gl}/api/v4/projects`, GITLAB_HEADERS);
    assert.equal(gl.status, 200, gl.body);
    assert.equal(gitlab.seen.at(-1)!.headers['private-token'], GL_TOKEN);
    assert.equal(preGaApi.calls.filter((c) => c.path.endsWith('/auth/validate')).length, 0, 'our server asks no gateway without mandatory auth');
  });

  test("a GA client's tunnels identify and its requests reach the origin, but its uploads to /hidden/brokers/response-data are 404 (as on snyk-broker's server): only answers over the websocket come back", async () => {
    assert.equal(gaApi.calls.filter((c) => c.path.endsWith('/auth/validate')).length, 0);
    const before = github.seen.length;
    const lost = await get(`${serverUrl}/broker/${gaIds.gh}/user/repos`);
    assert.equal(lost.status, 504, lost.body);
    assert.ok(github.seen.slice(before).some((s) => s.url === '/user/repos' && s.headers.authorization === `token ${GH_TOKEN}`), 'the request reached GitHub with its token');
    await gaClient.waitForOutput(/"responseStatus":"404"[^\n]*Received unexpected HTTP response POSTing data to Broker Server/, 10_000);

    const overWs = await get(`${serverUrl}/broker/${gaIds.gl}/api/v4/projects`, { ...GITLAB_HEADERS, 'x-broker-ws-response': 'true' });
    assert.equal(overWs.status, 200, overWs.body);
    assert.equal(gitlab.seen.at(-1)!.headers['private-token'], GL_TOKEN);
  });
});
