// Universal Broker mode, our client against our server (both processes) and a fake Snyk API: two
// connections of different types from one deployment, each with its own tunnels and credentials;
// a connection with a missing credential reference stays off; a sync on the server's
// config/reload removes one connection and rotates another's identifier.
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
import { startFakeSnykApi, type FakeConnection, type FakeSnykApi, universalClientEnv } from '../support/fake-snyk-api.js';
import { FAILURES } from '../../src/protocol/failures.js';

const group = new ProcessGroup();
const GH_TOKEN = `ghp_${randomUUID().replace(/-/g, '')}`;
const GL_TOKEN = `glpat-${randomUUID().replace(/-/g, '')}`;
const CTX_TOKEN = `ghp_ctx${randomUUID().replace(/-/g, '')}`;
const contextId = randomUUID();
const offContextId = randomUUID();
const ghIdentifier = randomUUID();
const glIdentifier = randomUUID();
let github: Origin;
let githubOfContext: Origin;
let gitlab: Origin;
let api: FakeSnykApi;
let server: RunningProcess;
let client: RunningProcess;
let serverUrl: string;
let clientUrl: string;

function connections(gh = ghIdentifier, withGitlab = true): FakeConnection[] {
  return [
    {
      name: 'corp github',
      type: 'github',
      identifier: gh,
      required: { github_token: '${GH_TOKEN}', github_api: `127.0.0.1:${new URL(github.url).port}` },
      contexts: [
        { id: contextId, values: { github_token: '${CTX_TOKEN}', github_api: `127.0.0.1:${new URL(githubOfContext.url).port}` } },
        { id: offContextId, values: { github_token: '${NOT_SET_FOR_CONTEXT}' } },
      ],
    },
    ...(withGitlab ? [{ name: 'corp gitlab', type: 'gitlab', identifier: glIdentifier, required: { gitlab_token: '${GL_TOKEN}', gitlab: `127.0.0.1:${new URL(gitlab.url).port}` } }] : []),
    { name: 'half set up', type: 'gitlab', identifier: randomUUID(), required: { gitlab_token: '${NOT_SET_ANYWHERE}', gitlab: 'gitlab.invalid' } },
    { name: 'unused', type: 'github', identifier: null, required: { github_token: '${GH_TOKEN}' } },
  ];
}

function tunnelsOf(identifier: string): Promise<number> {
  return readyTunnels(serverUrl, identifier);
}

async function get(url: string): Promise<{ status: number; body: string; failure?: string }> {
  const r = await request(url, { reset: true });
  return { status: r.statusCode, body: await r.body.text(), failure: r.headers['x-broker-failure'] as string | undefined };
}

before(async () => {
  github = await startOrigin();
  githubOfContext = await startOrigin();
  gitlab = await startOrigin();
  api = await startFakeSnykApi({ connections: [] });
  api.setConnections(connections());
  const serverPort = await freePort();
  serverUrl = `http://127.0.0.1:${serverPort}`;
  server = group.broker('server', 'server', {
    PORT: String(serverPort),
    BROKER_SERVER_HOST: '127.0.0.1',
    ACCEPT: await writeAcceptFile({ public: [{ method: 'any', path: '/*' }], private: [] }),
  });
  await waitFor('server health', async () => (await httpStatus(`${serverUrl}/healthcheck`)) === 200, { timeoutMs: 30_000 });
  const clientPort = await freePort();
  clientUrl = `http://127.0.0.1:${clientPort}`;
  client = group.broker('client', 'client', {
    ...universalClientEnv(api, serverUrl),
    BROKER_CLIENT_URL: clientUrl,
    PORT: String(clientPort),
    GH_TOKEN,
    GL_TOKEN,
    CTX_TOKEN,
    // The fake origins speak plain http.
    INSECURE_DOWNSTREAM: 'true',
    PREFLIGHT_CHECKS_ENABLED: 'false',
  });
  await waitFor('both connections have their two tunnels', async () => (await tunnelsOf(ghIdentifier)) === 2 && (await tunnelsOf(glIdentifier)) === 2, { timeoutMs: 30_000 });
});

after(async () => {
  try {
    const out = group.allOutput();
    for (const secret of [GH_TOKEN, GL_TOKEN, CTX_TOKEN, api.clientSecret]) assert.ok(!out.includes(secret), 'a credential is in a log line');
    for (const call of api.calls) {
      const bearer = String(call.headers.authorization ?? '').split(' ')[1];
      if (bearer) assert.ok(!out.includes(bearer), 'an OAuth access token is in a log line');
    }
  } finally {
    await group.stopAll();
    await Promise.all([github.close(), githubOfContext.close(), gitlab.close(), api.close()]);
  }
});

test('each connection relays with its own type rules and credential', async () => {
  const gh = await get(`${serverUrl}/broker/${ghIdentifier}/user/repos`);
  assert.equal(gh.status, 200, gh.body);
  const ghSeen = github.seen.at(-1)!;
  assert.equal(ghSeen.url, '/user/repos');
  assert.ok(JSON.stringify(ghSeen.headers).includes(Buffer.from(`${GH_TOKEN}:`).toString('base64')) || JSON.stringify(ghSeen.headers).includes(GH_TOKEN), 'the GitHub token reached GitHub');

  const gl = await get(`${serverUrl}/broker/${glIdentifier}/api/v4/projects`);
  assert.equal(gl.status, 200, gl.body);
  assert.equal(gitlab.seen.at(-1)!.url.split('?')[0], '/api/v4/projects');
  assert.ok(!JSON.stringify(gitlab.seen).includes(GH_TOKEN), 'the GitHub token never goes to GitLab');

  // A path the github rules do not allow is refused by the client, whatever the server allows.
  const refused = await get(`${serverUrl}/broker/${ghIdentifier}/user`.replace('/user', '/user/keys/1'));
  assert.equal(refused.status, 401, `${refused.failure} ${refused.body}`);
});

test("a request naming a context uses the context's values; an unknown or half-set-up context is refused", async () => {
  const before = github.seen.length;
  const viaContext = await get(`${serverUrl}/broker/${ghIdentifier}/ctx/${contextId}/user/repos`);
  assert.equal(viaContext.status, 200, viaContext.body);
  const seen = githubOfContext.seen.at(-1)!;
  assert.equal(seen.url, '/user/repos');
  const headers = JSON.stringify(seen.headers);
  assert.ok(headers.includes(Buffer.from(`${CTX_TOKEN}:`).toString('base64')) || headers.includes(CTX_TOKEN), "the context's token reached the context's GitHub");
  assert.ok(!headers.includes('x-snyk-broker-context-id'), 'the context header is not passed on');
  assert.equal(github.seen.length, before, "the connection's own GitHub saw nothing");
  for (const id of [offContextId, randomUUID()]) {
    const refused = await get(`${serverUrl}/broker/${ghIdentifier}/ctx/${id}/user/repos`);
    assert.equal(refused.status, 404, refused.body);
    assert.equal(refused.failure, FAILURES.UNKNOWN_CONTEXT.reason);
  }
  assert.match(client.output(), /NOT_SET_FOR_CONTEXT/);
});

test('the connections list carries the OAuth bearer, one token is reused, the identify says Universal', async () => {
  const tokenCalls = api.calls.filter((c) => c.path === '/oauth2/token');
  assert.ok(tokenCalls.length >= 1 && tokenCalls.length <= 2, `one token reused, got ${tokenCalls.length} token calls`);
  const list = api.calls.find((c) => c.path.endsWith('/connections') && c.method === 'GET');
  assert.ok(list, 'the connections were listed');
  assert.match(String(list.headers.authorization), /^bearer /i);
  assert.equal(list.query.get('version'), '2024-02-08~experimental');
  // Our server logs how each tunnel identified itself: Universal, under the connection's type.
  assert.match(server.output(), /"mode":"universal"[^\n]*client connection identified|client connection identified[^\n]*"mode":"universal"/);
});

test('healthcheck lists every tunnel with its masked identifier and friendly name, metrics are labelled by connection; the half-set-up connection is off and says why', async () => {
  const h = await get(`${clientUrl}/healthcheck`);
  assert.equal(h.status, 200);
  const entries = JSON.parse(h.body) as Array<{ ok: boolean; friendlyName: string; identifier: string }>;
  assert.equal(entries.length, 4);
  assert.deepEqual([...new Set(entries.map((e) => e.friendlyName))].sort(), ['corp github', 'corp gitlab']);
  assert.ok(entries.every((e) => e.ok && !e.identifier.includes(ghIdentifier) && !e.identifier.includes(glIdentifier)));
  const metrics = await get(`${clientUrl}/metrics`);
  assert.match(metrics.body, /broker_client_tunnels_open\{role="primary",connection="corp github"\} 1/);
  assert.match(metrics.body, /broker_client_requests_total\{[^}]*connection="corp gitlab"[^}]*\} [1-9]/);
  assert.match(client.output(), /half set up[^\n]*NOT_SET_ANYWHERE|NOT_SET_ANYWHERE[^\n]*half set up/);
});

test('webhooks go to a tunnel of the type their path names; an unknown type is refused', async () => {
  const unknown = await request(`${clientUrl}/webhook/bitbucket-server/abc`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  await unknown.body.dump();
  assert.equal(unknown.statusCode, 401);
  assert.equal(unknown.headers['x-broker-failure'], FAILURES.UNKNOWN_REQUEST_TYPE.reason);
});

test('config/reload from the server: a removed connection closes, a rotated identifier moves, the other keeps working', async () => {
  const rotated = randomUUID();
  api.setConnections(connections(rotated, false));
  const ack = await get(`${serverUrl}/service/${ghIdentifier}/config/reload`);
  assert.equal(ack.status, 200, ack.body);
  assert.deepEqual(JSON.parse(ack.body), { ok: true, msg: 'Synchronizing Config.' });
  await waitFor('the rotated identifier has its tunnels', async () => (await tunnelsOf(rotated)) === 2, { timeoutMs: 30_000 });
  await waitFor('the old identifier and the removed connection are gone', async () => (await tunnelsOf(ghIdentifier)) === 0 && (await tunnelsOf(glIdentifier)) === 0, { timeoutMs: 30_000 });
  const gh = await get(`${serverUrl}/broker/${rotated}/user/repos`);
  assert.equal(gh.status, 200, gh.body);
  const old = await get(`${serverUrl}/broker/${glIdentifier}/api/v4/projects`);
  assert.notEqual(old.status, 200);
});

test('a refused client secret or an unknown deployment stops the start with exit 2 and says which; nothing secret in the message', async () => {
  const cases = [
    { env: { CLIENT_SECRET: 'not-the-secret' }, says: /Snyk refused the client credentials \(CLIENT_ID \/ CLIENT_SECRET\)/ },
    { env: { DEPLOYMENT_ID: randomUUID() }, says: /No deployment [0-9a-f-]+ found .*DEPLOYMENT_ID/ },
  ];
  for (const c of cases) {
    const p = group.broker('client-refused', 'client', {
      ...universalClientEnv(api, serverUrl),
      PORT: '0',
      PREFLIGHT_CHECKS_ENABLED: 'false',
      ...c.env,
    });
    const code = await waitFor('the client to exit', () => p.child.exitCode ?? undefined, { timeoutMs: 30_000, intervalMs: 100 });
    assert.equal(code, 2, p.output());
    assert.match(p.output(), c.says);
    assert.ok(!p.output().includes('not-the-secret') && !p.output().includes(api.clientSecret), 'a client secret is in the output');
  }
});
