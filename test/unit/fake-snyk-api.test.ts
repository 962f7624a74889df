// The fake Snyk API (test/support/fake-snyk-api.ts): each route driven with plain fetch, then
// against the real snyk-broker client's own modules, loaded in process from
// node_modules/snyk-broker/dist: its OAuth client, its connections fetch (and the CONNECTIONS
// block it writes), its auth renewal, its HA allocation client, its preflight check and the
// broker server's credential validation. None of those needs config.default.json: they read
// their settings from arguments or env, and getConfig() is {} until loadBrokerConfig runs.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDispatcherConfig } from '../../src/config/dispatcher.js';
import { createDispatcher, type Dispatcher } from '../../src/dispatcher/dispatcher.js';
import { createMemoryStore } from '../../src/dispatcher/memory-store.js';
import { hashedIdentifier, startFakeSnykApi, type FakeConnection, type FakeSnykApi } from '../support/fake-snyk-api.js';
import { SNYK_BROKER_DIR } from '../support/paths.js';
import { waitFor } from '../support/wait.js';

const GH = randomUUID();
const GL = randomUUID();
const CONNECTIONS: FakeConnection[] = [
  {
    name: 'my github',
    type: 'github',
    identifier: GH,
    id: 'c-github',
    required: { GITHUB_TOKEN: '${MY_GITHUB_TOKEN}', broker_client_url: 'https://broker.corp.example:8000' },
    default: { GITHUB_API: 'ghe.example/api/v3' },
    contexts: [{ id: 'ctx-1', values: { GITHUB_TOKEN: '${OTHER_GH_TOKEN}' } }],
  },
  { name: 'my gitlab', type: 'gitlab', identifier: GL, id: 'c-gitlab', required: { gitlab_token: '${GL}', gitlab: 'gitlab.example' } },
  { name: 'unused', type: 'jira', identifier: null, id: 'c-unused', required: { jira_pat: '${JIRA}', jira_hostname: 'jira.example' } },
];

interface TokenAnswer {
  access_token: string;
  token_type: string;
  expires_in: number;
}

async function getToken(api: FakeSnykApi, secret = api.clientSecret): Promise<Response> {
  return fetch(`${api.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: api.clientId, client_secret: secret }).toString(),
  });
}

async function bearer(api: FakeSnykApi): Promise<string> {
  const t = (await (await getToken(api)).json()) as TokenAnswer;
  return `${t.token_type} ${t.access_token}`;
}

const listConnections = (api: FakeSnykApi, auth: string | undefined, deployment = api.deploymentId) =>
  fetch(`${api.url}/hidden/brokers/deployments/${deployment}/connections?version=2024-02-08~experimental`, {
    headers: { 'content-type': 'application/vnd.api+json', ...(auth ? { authorization: auth } : {}) },
  });

const postJson = (url: string, auth: string | undefined, body: unknown) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/vnd.api+json', ...(auth ? { authorization: auth } : {}) }, body: JSON.stringify(body) });

const refreshBody = { data: { type: 'broker_connection', attributes: { broker_client_id: 'bc-1' } } };
const allocBody = { data: { attributes: { deployment_location: 'snyk-broker-client', broker_token_first_char: GH[0] } } };

describe('fake Snyk API over plain HTTP', () => {
  let api: FakeSnykApi;
  before(async () => {
    api = await startFakeSnykApi({ connections: CONNECTIONS, serverId: (sha, clientId) => (sha === hashedIdentifier(GH) ? `srv-for-${clientId}` : undefined) });
  });
  after(async () => api?.close());

  it('token: form or Basic credentials give a bearer JWT with azp, iat, exp, jti; bad ones 401 invalid_client', async () => {
    const res = await getToken(api);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^application\/json/);
    const t = (await res.json()) as TokenAnswer;
    assert.equal(t.token_type, 'bearer');
    assert.equal(t.expires_in, 3600);
    const parts = t.access_token.split('.');
    assert.equal(parts.length, 3);
    for (const p of parts) assert.match(p, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(JSON.parse(Buffer.from(parts[0]!, 'base64url').toString()), { alg: 'HS256', typ: 'JWT' });
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString()) as Record<string, unknown>;
    assert.equal(claims.azp, api.clientId);
    assert.equal(typeof claims.jti, 'string');
    assert.ok(Math.abs((claims.iat as number) - Date.now() / 1000) < 5);
    assert.equal((claims.exp as number) - (claims.iat as number), 3600);

    const basic = await fetch(`${api.url}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${api.clientId}:${api.clientSecret}`).toString('base64')}` },
      body: 'grant_type=client_credentials',
    });
    assert.equal(basic.status, 200);

    const bad = await getToken(api, 'wrong');
    assert.equal(bad.status, 401);
    assert.deepEqual(((await bad.json()) as { error: string }).error, 'invalid_client');
    const grant = await fetch(`${api.url}/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `grant_type=password&client_id=${api.clientId}&client_secret=${api.clientSecret}` });
    assert.equal(grant.status, 400);
  });

  it('token endpoint down (503) and reset (no answer), then up again', async () => {
    api.tokenEndpoint('down');
    assert.equal((await getToken(api)).status, 503);
    api.tokenEndpoint('reset');
    await assert.rejects(getToken(api));
    api.tokenEndpoint('up');
    assert.equal((await getToken(api)).status, 200);
  });

  it('connections: JSON:API list with lower-case keys and relationships as an array; 401 without a live token; 404 for another deployment', async () => {
    const auth = await bearer(api);
    const res = await listConnections(api, auth);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^application\/vnd\.api\+json/);
    const body = (await res.json()) as { data: Array<Record<string, unknown>> };
    assert.equal(body.data.length, 3);
    assert.deepEqual(body.data[0], {
      id: 'c-github',
      type: 'broker_connection',
      attributes: {
        name: 'my github',
        deployment_id: api.deploymentId,
        identifier: GH,
        configuration: { type: 'github', default: { github_api: 'ghe.example/api/v3' }, required: { github_token: '${MY_GITHUB_TOKEN}', broker_client_url: 'https://broker.corp.example:8000' } },
        secrets: {
          primary: { encrypted: 'not-yet-implemented', expires_at: '1970-01-01T00:00:00.000Z', nonce: 'not-yet-implemented' },
          secondary: { encrypted: 'not-yet-implemented', expires_at: '1970-01-01T00:00:00.000Z', nonce: 'not-yet-implemented' },
        },
      },
      relationships: [{ id: 'ctx-1', type: 'broker_context', attributes: { context: { github_token: '${OTHER_GH_TOKEN}' } } }],
    });
    assert.deepEqual((body.data[2]!.attributes as { identifier: unknown }).identifier, null);
    assert.deepEqual(body.data[1]!.relationships, []);

    assert.equal((await listConnections(api, undefined)).status, 401);
    assert.equal((await listConnections(api, 'bearer not.a.jwt')).status, 401);
    const [h, p, s] = auth.split(' ')[1]!.split('.');
    assert.equal((await listConnections(api, `bearer ${h}.${p}.${s!.slice(0, -2)}AA`)).status, 401, 'a forged signature');
    assert.equal((await listConnections(api, auth, randomUUID())).status, 404);
    const noVersion = await fetch(`${api.url}/hidden/brokers/deployments/${api.deploymentId}/connections`, { headers: { authorization: auth } });
    assert.equal(noVersion.status, 400);
  });

  it('setConnections replaces the list; connections() returns it with ids', async () => {
    const auth = await bearer(api);
    api.setConnections([{ name: 'only', type: 'github', identifier: GH }]);
    try {
      const listed = api.connections();
      assert.equal(listed.length, 1);
      assert.match(listed[0]!.id!, /^[0-9a-f-]{36}$/);
      const body = (await (await listConnections(api, auth)).json()) as { data: Array<{ id: string; attributes: { name: string } }> };
      assert.deepEqual(
        body.data.map((d) => [d.id, d.attributes.name]),
        [[listed[0]!.id, 'only']],
      );
    } finally {
      api.setConnections(CONNECTIONS);
    }
  });

  it('revokeAllTokens: issued tokens stop working, new ones work', async () => {
    const auth = await bearer(api);
    assert.equal((await listConnections(api, auth)).status, 200);
    api.revokeAllTokens();
    assert.equal((await listConnections(api, auth)).status, 401);
    assert.equal((await listConnections(api, await bearer(api))).status, 200);
  });

  it('a 1 s TTL token works, then expires (401)', async () => {
    const short = await startFakeSnykApi({ connections: CONNECTIONS, tokenTtlSeconds: 1 });
    try {
      const t = (await (await getToken(short)).json()) as TokenAnswer;
      assert.equal(t.expires_in, 1);
      const issuedAt = Date.now();
      assert.equal((await listConnections(short, `bearer ${t.access_token}`)).status, 200);
      await waitFor('the 1 s token to expire', async () => (await listConnections(short, `bearer ${t.access_token}`)).status === 401, { timeoutMs: 5000, intervalMs: 100 });
      assert.ok(Date.now() - issuedAt >= 900, 'expired no sooner than its TTL');
    } finally {
      await short.close();
    }
  });

  it('auth/validate: 201 for a live token and a current identifier (any case), 401 otherwise', async () => {
    const auth = await bearer(api);
    const validate = (id: string, a: string | undefined) => postJson(`${api.url}/hidden/brokers/connections/${id}/auth/validate?version=2024-02-08~experimental`, a, refreshBody);
    assert.equal((await validate(GH, auth)).status, 201);
    assert.equal((await validate(GH.toUpperCase(), auth)).status, 201);
    assert.equal((await validate(randomUUID(), auth)).status, 401, 'not a connection');
    assert.equal((await validate(GL, 'bearer forged.token.here')).status, 401);
    assert.equal((await validate(GL, `bearer ${api.issueToken()}`)).status, 201, 'issueToken gives a live token');
    api.setConnections(CONNECTIONS.filter((c) => c.identifier !== GL));
    try {
      assert.equal((await validate(GL, auth)).status, 401, 'a removed connection');
    } finally {
      api.setConnections(CONNECTIONS);
    }
  });

  it('auth/refresh: 201 OK; 401 for a bad token, unknown identifier or no role; failRefresh(n, status) fails the next n', async () => {
    const auth = await bearer(api);
    const refresh = (a: string | undefined, id = GH, qs = 'connection_role=primary') => postJson(`${api.url}/hidden/brokers/connections/${id}/auth/refresh?${qs}`, a, refreshBody);
    const ok = await refresh(auth, GH, 'server_id=1&connection_role=secondary');
    assert.equal(ok.status, 201);
    assert.equal(await ok.text(), 'OK');
    assert.equal((await refresh(undefined)).status, 401);
    assert.equal((await refresh(auth, randomUUID())).status, 401);
    assert.equal((await refresh(auth, GH, '')).status, 401);
    api.failRefresh(2, 503);
    assert.equal((await refresh(auth)).status, 503);
    assert.equal((await refresh(auth)).status, 503);
    assert.equal((await refresh(auth)).status, 201);
    api.failRefresh(1);
    assert.equal((await refresh(auth)).status, 500);
    assert.equal((await refresh(auth)).status, 201);
  });

  it('HA allocation under both prefixes: server_id from the function, 404 when it gives none, 401 without a token', async () => {
    const auth = await bearer(api);
    const sha = hashedIdentifier(GH);
    for (const prefix of ['/hidden/broker', '/hidden/brokers']) {
      const res = await postJson(`${api.url}${prefix}/${sha}/connections/bc-7?version=2022-12-01~experimental`, auth, allocBody);
      assert.equal(res.status, 200, prefix);
      assert.deepEqual(((await res.json()) as { data: { attributes: unknown } }).data.attributes, { server_id: 'srv-for-bc-7' });
    }
    const other = hashedIdentifier(GL);
    assert.equal((await postJson(`${api.url}/hidden/brokers/${other}/connections/bc-7?version=2022-12-01~experimental`, auth, allocBody)).status, 404);
    assert.equal((await postJson(`${api.url}/hidden/brokers/${sha}/connections/bc-7?version=2022-12-01~experimental`, undefined, allocBody)).status, 401);
    assert.equal((await postJson(`${api.url}/hidden/brokers/${sha}/connections/bc-7?version=2022-12-01~experimental`, auth, { data: {} })).status, 400);
  });

  it('/rest/openapi 200 JSON, webhooks recorded (waitForCall), any other path 404 JSON', async () => {
    const open = await fetch(`${api.url}/rest/openapi`);
    assert.equal(open.status, 200);
    assert.match(open.headers.get('content-type')!, /json/);
    const waiting = api.waitForCall((c) => c.path === '/webhook/github/abc');
    const hook = await fetch(`${api.url}/webhook/github/abc?x=1`, { method: 'POST', headers: { 'x-github-event': 'push' }, body: '{"ref":"main"}' });
    assert.equal(hook.status, 200);
    const call = await waiting;
    assert.equal(call.method, 'POST');
    assert.equal(call.body, '{"ref":"main"}');
    assert.equal(call.query.get('x'), '1');
    assert.equal(call.headers['x-github-event'], 'push');
    const missing = await fetch(`${api.url}/nope`);
    assert.equal(missing.status, 404);
    assert.match(missing.headers.get('content-type')!, /json/);
    await assert.rejects(api.waitForCall((c) => c.path === '/never', 50), /no matching call within 50 ms/);
  });
});

describe('fake Snyk API forwarding HA allocation to our dispatcher', () => {
  const SECRET = 'internal-secret-value-1';
  let d: Dispatcher;
  let api: FakeSnykApi;
  before(async () => {
    const config = await loadDispatcherConfig({ PORT: '0', BROKER_INTERNAL_SECRET: SECRET, SERVER_PROBE_INTERVAL_MS: '0', DISPATCHER_HOST: '127.0.0.1', DISPATCHER_STARTUP_GRACE_MS: '0' });
    d = createDispatcher(config, { store: createMemoryStore() });
    await d.start();
    const reg = await fetch(`http://127.0.0.1:${d.port}/internal/brokerservers/7?version=2022-12-02%7Eexperimental`, {
      method: 'POST',
      headers: { 'x-broker-internal-secret': SECRET, 'content-type': 'application/vnd.api+json' },
      body: JSON.stringify({ data: { attributes: { health_check_link: 'http://broker-server-7/healthcheck', peer_url: 'http://10.0.0.7:7341/' } } }),
    });
    assert.equal(reg.status, 200);
    // The client calls /hidden/brokers (GA); our dispatcher serves its default /hidden/broker.
    api = await startFakeSnykApi({ connections: CONNECTIONS, dispatcherUrl: `http://127.0.0.1:${d.port}`, dispatcherPrefix: '/hidden/broker' });
  });
  after(async () => {
    await api?.close();
    await d?.stop('test');
  });

  it("passes the dispatcher's answer back (status, JSON:API body, content-type)", async () => {
    const sha = hashedIdentifier(GH);
    const res = await postJson(`${api.url}/hidden/brokers/${sha}/connections/bc-9?version=2022-12-01~experimental`, await bearer(api), allocBody);
    assert.equal(res.status, 201);
    assert.match(res.headers.get('content-type')!, /^application\/vnd\.api\+json/);
    assert.equal(((await res.json()) as { data: { attributes: { server_id: string } } }).data.attributes.server_id, '7');
    assert.equal((await postJson(`${api.url}/hidden/brokers/${sha}/connections/bc-9?version=2022-12-01~experimental`, undefined, allocBody)).status, 401, 'the fake authenticates first');
  });
});

// ---- against the real snyk-broker package's own code ----

interface RealOAuth {
  initOAuthClient(o: { clientId: string; clientSecret: string; apiHostname: string; expiryThresholdSeconds?: number }): void;
  getAccessToken(): Promise<string>;
  invalidateToken(): void;
}
interface RealRemoteConfig {
  retrieveConnectionsForDeployment(clientOpts: { config: Record<string, unknown> }, universalFilePath: string): Promise<void>;
}
interface RealRenewal {
  renewBrokerServerConnection(p: { connectionIdentifier: string; brokerClientId: string; authorization: string; role: string; serverId?: string }, config: Record<string, unknown>): Promise<{ statusCode?: number }>;
}
interface RealDispatcherClient {
  HttpDispatcherServiceClient: new (baseUrl: string) => {
    createConnection(p: { hashedBrokerToken: string; brokerClientId: string }, d: { deployment_location: string; broker_token_first_char: string }, config: Record<string, unknown>): Promise<string>;
  };
}
interface RealAuthHelpers {
  validateBrokerClientCredentials(headers: Record<string, string>, identifier: string): Promise<{ brokerClientId: string; credentials: string; role: string }>;
  BrokerAuthError: new () => Error;
}
interface RealHttpChecks {
  getHttpChecks(config: Record<string, unknown>): Array<{ id: string; check(): Promise<{ status: string; output: string }> }>;
}

describe('fake Snyk API against the real snyk-broker client code (in process)', () => {
  process.env.LOG_LEVEL ??= 'fatal';
  const load = createRequire(join(SNYK_BROKER_DIR, 'dist', 'lib', 'index.js'));
  const oauth = load('./hybrid-sdk/client/auth/oauth.js') as RealOAuth;
  const remote = load('./hybrid-sdk/client/config/remoteConfig.js') as RealRemoteConfig;
  const renewal = load('./hybrid-sdk/client/auth/brokerServerConnection.js') as RealRenewal;
  const dispatcherClient = load('./hybrid-sdk/client/dispatcher/client/api.js') as RealDispatcherClient;
  const authHelpers = load('./hybrid-sdk/server/auth/authHelpers.js') as RealAuthHelpers;
  const httpChecks = load('./hybrid-sdk/client/checks/http/index.js') as RealHttpChecks;
  const realToken = load('./hybrid-sdk/common/utils/token.js') as { hashToken(t: string): string };
  const brokerClientId = randomUUID();
  let api: FakeSnykApi;
  let dir: string;
  const clientConfig = () => ({ API_BASE_URL: api.url, deploymentId: api.deploymentId, apiVersion: '2024-02-08~experimental', brokerClientId, DISPATCHER_URL_PREFIX: '/hidden/brokers' });

  before(async () => {
    api = await startFakeSnykApi({ connections: CONNECTIONS, serverId: (sha, id) => (sha === hashedIdentifier(GH) && id === brokerClientId ? '3' : undefined) });
    dir = await mkdtemp(join(tmpdir(), 'fake-snyk-api-'));
    oauth.initOAuthClient({ clientId: api.clientId, clientSecret: api.clientSecret, apiHostname: api.url });
  });
  after(async () => {
    await api?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("simple-oauth2 (the real OAuth client) gets a token: the wire is Snyk's, the header 'bearer <jwt>'", async () => {
    const header = await oauth.getAccessToken();
    assert.match(header, /^bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const call = api.calls.find((c) => c.path === '/oauth2/token')!;
    assert.equal(call.method, 'POST');
    assert.match(String(call.headers['content-type']), /^application\/x-www-form-urlencoded/);
    assert.equal(call.headers.accept, 'application/json');
    assert.deepEqual(Object.fromEntries(new URLSearchParams(call.body)), { grant_type: 'client_credentials', client_id: api.clientId, client_secret: api.clientSecret });
    assert.equal(await oauth.getAccessToken(), header, 'cached while not within 60 s of expiry');
    assert.equal(api.calls.filter((c) => c.path === '/oauth2/token').length, 1);
  });

  it('the real OAuth client fails on bad credentials and on a down endpoint', async () => {
    const other = await startFakeSnykApi({ connections: [] });
    try {
      oauth.initOAuthClient({ clientId: other.clientId, clientSecret: 'wrong', apiHostname: other.url });
      await assert.rejects(oauth.getAccessToken(), /401|Unauthorized/i);
      oauth.initOAuthClient({ clientId: other.clientId, clientSecret: other.clientSecret, apiHostname: other.url });
      other.tokenEndpoint('down');
      await assert.rejects(oauth.getAccessToken(), /503|Unavailable/i);
      other.tokenEndpoint('up');
      assert.match(await oauth.getAccessToken(), /^bearer /);
    } finally {
      oauth.initOAuthClient({ clientId: api.clientId, clientSecret: api.clientSecret, apiHostname: api.url });
      await other.close();
    }
  });

  it('retrieveConnectionsForDeployment maps the list into CONNECTIONS as §2.2 says', async () => {
    const file = join(dir, 'config.universal.json');
    await writeFile(file, JSON.stringify({ BROKER_CLIENT_CONFIGURATION: { common: { oauth: { clientId: '${CLIENT_ID}', clientSecret: '${CLIENT_SECRET}' } } } }));
    await remote.retrieveConnectionsForDeployment({ config: clientConfig() }, file);
    const written = JSON.parse(await readFile(file, 'utf8')) as { BROKER_CLIENT_CONFIGURATION: unknown; CONNECTIONS: unknown };
    assert.ok(written.BROKER_CLIENT_CONFIGURATION, 'the rest of the file is kept');
    assert.deepEqual(written.CONNECTIONS, {
      'my github': {
        GITHUB_API: 'ghe.example/api/v3',
        GITHUB_TOKEN: '${MY_GITHUB_TOKEN}',
        BROKER_CLIENT_URL: 'https://broker.corp.example:8000',
        type: 'github',
        identifier: GH,
        id: 'c-github',
        friendlyName: 'my github',
        contexts: { 'ctx-1': { GITHUB_TOKEN: '${OTHER_GH_TOKEN}' } },
      },
      'my gitlab': { GITLAB_TOKEN: '${GL}', GITLAB: 'gitlab.example', type: 'gitlab', identifier: GL, id: 'c-gitlab', friendlyName: 'my gitlab', contexts: {} },
      unused: { JIRA_PAT: '${JIRA}', JIRA_HOSTNAME: 'jira.example', type: 'jira', identifier: null, id: 'c-unused', friendlyName: 'unused', contexts: {} },
    });
    const call = api.calls.findLast((c) => c.path.endsWith('/connections'))!;
    assert.equal(call.query.get('version'), '2024-02-08~experimental');
    assert.equal(call.headers['x-broker-client-id'], brokerClientId);
    assert.equal(call.headers['content-type'], 'application/vnd.api+json');
  });

  it('after revokeAllTokens the real client gets a 401, takes a new token and retries once; an unknown deployment is its fatal 404', async () => {
    const file = join(dir, 'config.universal.json');
    const tokensBefore = api.calls.filter((c) => c.path === '/oauth2/token').length;
    api.revokeAllTokens();
    await remote.retrieveConnectionsForDeployment({ config: clientConfig() }, file);
    assert.equal(api.calls.filter((c) => c.path === '/oauth2/token').length, tokensBefore + 1);
    const lists = api.calls.filter((c) => c.path.endsWith('/connections'));
    assert.notEqual(lists.at(-1)!.headers.authorization, lists.at(-2)!.headers.authorization);
    await assert.rejects(remote.retrieveConnectionsForDeployment({ config: { ...clientConfig(), deploymentId: randomUUID() } }, file), /No deployment found/);
  });

  it('renewBrokerServerConnection (the 10-min auth renewal): 201 from the fake, the failRefresh status when failing', async () => {
    const params = { connectionIdentifier: GH, brokerClientId, authorization: await oauth.getAccessToken(), role: 'primary', serverId: '2' };
    assert.equal((await renewal.renewBrokerServerConnection(params, clientConfig())).statusCode, 201);
    const call = api.calls.findLast((c) => c.path.endsWith('/auth/refresh'))!;
    assert.equal(call.query.get('server_id'), '2');
    assert.equal(call.query.get('connection_role'), 'primary');
    assert.deepEqual(JSON.parse(call.body), { data: { type: 'broker_connection', attributes: { broker_client_id: brokerClientId } } });
    api.failRefresh(1, 502);
    assert.equal((await renewal.renewBrokerServerConnection(params, clientConfig())).statusCode, 502);
    assert.equal((await renewal.renewBrokerServerConnection({ ...params, connectionIdentifier: randomUUID() }, clientConfig())).statusCode, 401);
  });

  it("HttpDispatcherServiceClient.createConnection (the real HA allocation) reads the fake's server_id and fails on its 404", async () => {
    const client = new dispatcherClient.HttpDispatcherServiceClient(api.url);
    const data = { deployment_location: 'snyk-broker-client', broker_token_first_char: GH[0]! };
    const hashed = realToken.hashToken(GH);
    assert.equal(hashed, hashedIdentifier(GH), "hashedIdentifier is the real client's hashToken");
    assert.equal(await client.createConnection({ hashedBrokerToken: hashed, brokerClientId }, data, clientConfig()), '3');
    const call = api.calls.findLast((c) => c.path.includes('/connections/'))!;
    assert.equal(call.path, `/hidden/brokers/${hashed}/connections/${brokerClientId}`);
    assert.match(String(call.headers.authorization), /^bearer /);
    assert.deepEqual(JSON.parse(call.body), { data: { attributes: data } });
    await assert.rejects(client.createConnection({ hashedBrokerToken: hashed, brokerClientId: 'someone-else' }, data, clientConfig()), /connection allocation/);
  });

  it("the real broker server's validateBrokerClientCredentials passes a live token (201) and rejects a revoked one", async () => {
    const saved = process.env.GATEWAY_HOSTNAME;
    process.env.GATEWAY_HOSTNAME = api.url;
    try {
      const headers = { authorization: await oauth.getAccessToken(), 'x-snyk-broker-client-id': brokerClientId, 'x-snyk-broker-client-role': 'primary' };
      const ok = await authHelpers.validateBrokerClientCredentials(headers, GH.toLowerCase());
      assert.equal(ok.brokerClientId, brokerClientId);
      const call = api.calls.findLast((c) => c.path.endsWith('/auth/validate'))!;
      assert.equal(call.query.get('version'), '2024-02-08~experimental');
      api.revokeAllTokens();
      await assert.rejects(authHelpers.validateBrokerClientCredentials(headers, GH), (err: unknown) => err instanceof authHelpers.BrokerAuthError);
      oauth.invalidateToken();
      const fresh = { ...headers, authorization: await oauth.getAccessToken() };
      await assert.rejects(authHelpers.validateBrokerClientCredentials(fresh, randomUUID()), (err: unknown) => err instanceof authHelpers.BrokerAuthError, 'not a connection');
    } finally {
      if (saved === undefined) delete process.env.GATEWAY_HOSTNAME;
      else process.env.GATEWAY_HOSTNAME = saved;
    }
  });

  it("the real preflight check 'rest-api-status' passes against /rest/openapi", async () => {
    const check = httpChecks.getHttpChecks({ API_BASE_URL: api.url, BROKER_SERVER_URL: 'http://127.0.0.1:1' }).find((c) => c.id === 'rest-api-status')!;
    const result = await check.check();
    assert.equal(result.status, 'passing', result.output);
  });
});
