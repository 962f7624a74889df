// Our Universal Broker client against the real snyk-broker 5.22.14 server with mandatory auth
// (BROKER_SERVER_MANDATORY_AUTH_ENABLED, GATEWAY_HOSTNAME and AUTHORIZATION_SERVICE = a fake
// Snyk API): two connections of different types (github, gitlab) from one deployment. Our
// handshakes pass the real server's validation, requests relay for both connections, our
// answer uploads (POST /hidden/brokers/response-data with the bearer) pass its azp check, and
// its /service/<identifier>/config/reload makes our client sync.
//
// The real server needs only the minimal config.default.json of ensureSnykBrokerConfig (its
// mandatory-auth mode is env only), so it runs from node_modules like the classic interop tests,
// on Node 20 (snykBrokerNode()).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { request } from 'undici';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startOrigin, type Origin } from '../support/origin.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { waitFor } from '../support/wait.js';
import { httpStatus } from '../support/http-status.js';
import { startSnykBroker } from '../support/snyk-broker.js';
import { startFakeSnykApi, type FakeConnection, type FakeSnykApi, universalClientEnv } from '../support/fake-snyk-api.js';

const group = new ProcessGroup();
const GH_TOKEN = `ghp_${randomUUID().replace(/-/g, '')}`;
const GL_TOKEN = `glpat-${randomUUID().replace(/-/g, '')}`;
const ids = { gh: randomUUID(), gl: randomUUID() };
let github: Origin;
let gitlab: Origin;
let api: FakeSnykApi;
let server: RunningProcess;
let client: RunningProcess;
let serverUrl: string;
let clientUrl: string;
let acceptDir: string | undefined;

function connections(withGitlab = true): FakeConnection[] {
  return [
    { name: 'corp github', type: 'github', identifier: ids.gh, required: { github_token: '${GH_TOKEN}', github_api: `127.0.0.1:${github.port}` } },
    ...(withGitlab ? [{ name: 'corp gitlab', type: 'gitlab', identifier: ids.gl, required: { gitlab_token: '${GL_TOKEN}', gitlab: `127.0.0.1:${gitlab.port}` } }] : []),
  ];
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const r = await request(url, { headers, reset: true });
  return { status: r.statusCode, body: await r.body.text() };
}

/** Identified tunnels of `identifier` on the real server (its pool also lists handshakes not identified yet, without a version). */
async function identified(identifier: string): Promise<Array<{ version: string }>> {
  try {
    const r = await get(`${serverUrl}/connection-status/${identifier}`);
    if (r.status !== 200) return [];
    return (JSON.parse(r.body) as { clients: Array<{ version?: string }> }).clients.filter((c): c is { version: string } => typeof c.version === 'string');
  } catch {
    return [];
  }
}

before(async () => {
  github = await startOrigin();
  gitlab = await startOrigin();
  api = await startFakeSnykApi({ connections: [] });
  api.setConnections(connections());
  const serverPort = await freePort();
  serverUrl = `http://127.0.0.1:${serverPort}`;
  const accept = await writeAcceptFile({ public: [{ method: 'any', path: '/*' }], private: [] });
  acceptDir = dirname(accept);
  server = await startSnykBroker(group, 'snyk-server', 'server', {
    PORT: String(serverPort),
    ACCEPT: accept,
    BROKER_SERVER_MANDATORY_AUTH_ENABLED: 'true',
    GATEWAY_HOSTNAME: api.url,
    AUTHORIZATION_SERVICE: api.url,
    LOG_LEVEL: 'debug',
  });
  await waitFor('snyk-broker server health', async () => (await httpStatus(`${serverUrl}/healthcheck`)) === 200, { timeoutMs: 60_000 });
  const clientPort = await freePort();
  clientUrl = `http://127.0.0.1:${clientPort}`;
  client = group.broker('client', 'client', {
    ...universalClientEnv(api, serverUrl),
    BROKER_CLIENT_URL: clientUrl,
    PORT: String(clientPort),
    GH_TOKEN,
    GL_TOKEN,
    // The fake origins speak plain http.
    INSECURE_DOWNSTREAM: 'true',
    PREFLIGHT_CHECKS_ENABLED: 'false',
    LOG_LEVEL: 'debug',
  });
  await waitFor('two identified tunnels for each connection', async () => (await identified(ids.gh)).length === 2 && (await identified(ids.gl)).length === 2, { timeoutMs: 60_000 });
});

after(async () => {
  try {
    const out = client ? client.output() : '';
    for (const secret of [GH_TOKEN, GL_TOKEN, api.clientSecret]) assert.ok(!out.includes(secret), 'a credential is in our client log');
    for (const call of api.calls) {
      const bearer = String(call.headers.authorization ?? '').split(' ')[1];
      if (bearer) assert.ok(!out.includes(bearer), 'an OAuth access token is in our client log');
    }
  } finally {
    await group.stopAll();
    await Promise.all([github?.close(), gitlab?.close(), api?.close(), acceptDir && rm(acceptDir, { recursive: true, force: true })]);
  }
});

test("our handshakes pass the real server's validation: a bearer the API issued, for both roles of both connections", async () => {
  const clientIds = new Set<string>();
  for (const identifier of [ids.gh, ids.gl]) {
    const validations = api.calls.filter((c) => c.path === `/hidden/brokers/connections/${identifier}/auth/validate`);
    assert.ok(validations.length >= 2, `validate calls for ${identifier}: ${validations.length}`);
    for (const v of validations) {
      // The fake answers 201 only to a live bearer it issued for a connection of the deployment.
      assert.match(String(v.headers.authorization), /^bearer \S+\.\S+\.\S+$/i);
      clientIds.add((JSON.parse(v.body) as { data: { attributes: { broker_client_id: string } } }).data.attributes.broker_client_id);
    }
    assert.ok((await identified(identifier)).every((t) => /\+ha-broker\./.test(t.version)));
  }
  assert.equal(clientIds.size, 1, 'one broker client id for the process');
  assert.doesNotMatch(server.output(), /Rejected broker client websocket connection/);
  assert.match(server.output(), /"mode":"universal"[^\n]*New client connection identified/);
});

test('requests relay for both connections with their own credentials; our uploads to /hidden/brokers/response-data pass the azp check', async () => {
  const gh = await get(`${serverUrl}/broker/${ids.gh}/user/repos`);
  assert.equal(gh.status, 200, gh.body);
  const atGithub = github.seen.at(-1)!;
  assert.equal(atGithub.url, '/user/repos');
  assert.ok(JSON.stringify(atGithub.headers).includes(GH_TOKEN), 'the GitHub token reached GitHub');

  const gl = await get(`${serverUrl}/broker/${ids.gl}/api/v4/projects`, { 'private-token': '${GITLAB_TOKEN}', 'x-broker-var-sub': 'private-token' });
  assert.equal(gl.status, 200, gl.body);
  const atGitlab = gitlab.seen.at(-1)!;
  assert.equal(atGitlab.url.split('?')[0], '/api/v4/projects');
  assert.equal(atGitlab.headers['private-token'], GL_TOKEN);
  assert.ok(!JSON.stringify(gitlab.seen).includes(GH_TOKEN), 'the GitHub token never goes to GitLab');
  assert.ok(!JSON.stringify(github.seen).includes(GL_TOKEN), 'the GitLab token never goes to GitHub');

  // Both answers went up as POST uploads (not acks), and the real server took them.
  // (The client logs a relay once its upload is done, which may be just after the platform has the answer.)
  for (const name of ['corp github', 'corp gitlab']) await client.waitForOutput(new RegExp(`"connection":"${name}"[^\n]*"via":"response-data","msg":"relayed a request"`), 10_000);
  assert.match(server.output(), /Handling response-data request - end part/);
  assert.doesNotMatch(server.output(), /Invalid Broker client credentials/);
});

test("the real server's config/reload reaches our client and it syncs: a connection removed from the deployment closes its tunnels", async () => {
  api.setConnections(connections(false));
  const ack = await get(`${serverUrl}/service/${ids.gh}/config/reload`);
  assert.equal(ack.status, 200, ack.body);
  assert.deepEqual(JSON.parse(ack.body), { ok: true, msg: 'Synchronizing Config.' });
  await client.waitForOutput(/"connection":"corp gitlab"[^\n]*"why":"removed from the deployment"/, 15_000);
  await waitFor('the gitlab tunnels to leave the real server', async () => (await httpStatus(`${serverUrl}/connection-status/${ids.gl}`)) === 404, { timeoutMs: 30_000 });
  assert.equal((await identified(ids.gh)).length, 2);
  const gh = await get(`${serverUrl}/broker/${ids.gh}/user/repos`);
  assert.equal(gh.status, 200, gh.body);
});
