// GitHub App authentication in Universal Broker mode (issues 20 and 21): a github-server-app
// connection whose App is one fake GitHub's, and a context of it with another App on another
// fake GitHub. Each fake checks every JWT's signature with its App's public key and hands out
// tokens that live 3 s, so steady load on both crosses many refreshes of each.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startFakeGithub, type FakeGithub } from '../support/fake-github.js';
import { makeTestPki, type TestPki } from '../support/tls.js';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { waitFor } from '../support/wait.js';
import { readyTunnels } from '../support/connection-status.js';
import { httpStatus } from '../support/http-status.js';
import { startFakeSnykApi, type FakeSnykApi, universalClientEnv } from '../support/fake-snyk-api.js';

const TOKEN_TTL_MS = 3000;
const identifier = randomUUID();
const contextId = randomUUID();
const group = new ProcessGroup();
let pki: TestPki;
let dir: string;
const apps: Array<{ id: string; installation: string; github: FakeGithub; keyPath: string; pem: string }> = [];
let api: FakeSnykApi;
let serverUrl: string;
let client: RunningProcess;
let clientUrl: string;

async function makeApp(id: string, installation: string): Promise<void> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const keyPath = join(dir, `app-${id}.pem`);
  await writeFile(keyPath, pem, { mode: 0o600 });
  const github = await startFakeGithub({ appId: id, installationId: installation, publicKey, tokenTtlMs: TOKEN_TTL_MS, cert: pki.cert, key: pki.key });
  apps.push({ id, installation, github, keyPath, pem });
}

/** A connection's (or context's) App values, with the lower-case keys Snyk's API sends. */
function appValues(i: number): Record<string, string> {
  const a = apps[i]!;
  return { github: a.github.host, github_api: a.github.host, github_app_id: a.id, github_app_client_id: `Iv1.${a.id}`, github_app_installation_id: a.installation, github_app_private_pem_path: a.keyPath };
}

function tunnels(): Promise<number> {
  return readyTunnels(serverUrl, identifier);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ub-github-app-'));
  pki = await makeTestPki();
  await makeApp('424242', '31337');
  await makeApp('515151', '27182');
  api = await startFakeSnykApi({
    connections: [{ name: 'ghes via app', type: 'github-server-app', identifier, required: appValues(0), contexts: [{ id: contextId, values: appValues(1) }] }],
  });
  const serverPort = await freePort();
  serverUrl = `http://127.0.0.1:${serverPort}`;
  group.broker('server', 'server', { PORT: String(serverPort), BROKER_SERVER_HOST: '127.0.0.1', ACCEPT: await writeAcceptFile({ public: [{ method: 'any', path: '/*' }], private: [] }) });
  await waitFor('server health', async () => (await httpStatus(`${serverUrl}/healthcheck`)) === 200, { timeoutMs: 30_000 });
  const clientPort = await freePort();
  clientUrl = `http://127.0.0.1:${clientPort}`;
  client = group.broker('client', 'client', {
    ...universalClientEnv(api, serverUrl),
    BROKER_CLIENT_URL: `http://127.0.0.1:${clientPort}`,
    PORT: String(clientPort),
    CA_CERT: pki.caFile,
    PREFLIGHT_CHECKS_ENABLED: 'false',
    LOG_LEVEL: 'debug',
  });
  await waitFor('the connection has its two tunnels', async () => (await tunnels()) === 2, { timeoutMs: 30_000 });
});

after(async () => {
  await group.stopAll();
  await Promise.all([...apps.map((a) => a.github.close()), api?.close()]);
});

async function get(path: string): Promise<{ status: number; body: string; failure?: string }> {
  const r = await request(`${serverUrl}/broker/${identifier}${path}`, { reset: true, headersTimeout: 30_000, bodyTimeout: 30_000 });
  return { status: r.statusCode, body: await r.body.text(), failure: r.headers['x-broker-failure'] as string | undefined };
}

test("steady load on the connection and its context: each App's own tokens, refreshed, never expired", async () => {
  const issued = apps.map((a) => a.github.stats.tokensIssued);
  const okBefore = apps.map((a) => a.github.stats.apiOk);
  const failed: string[] = [];
  let sent = 0;
  const end = Date.now() + 9000;
  const worker = async (path: string) => {
    while (Date.now() < end) {
      sent++;
      const r = await get(`${path}?n=${sent}`);
      if (r.status !== 200) failed.push(`${path} ${r.status} ${r.failure ?? ''} ${r.body.slice(0, 200)}`);
    }
  };
  await Promise.all([worker('/repos/org/repo'), worker('/repos/org/repo'), worker(`/ctx/${contextId}/repos/org/repo`), worker(`/ctx/${contextId}/repos/org/repo`)]);
  assert.deepEqual(failed, [], `${failed.length} of ${sent} failed`);
  assert.ok(sent > 100, `only ${sent} requests`);
  for (const [i, a] of apps.entries()) {
    assert.equal(a.github.stats.expiredUses, 0, `App ${a.id}: a request with an expired token`);
    assert.equal(a.github.stats.badAuth, 0, `App ${a.id}: a request without a token it issued`);
    assert.equal(a.github.stats.jwtRefused, 0, `App ${a.id}: a JWT refused`);
    assert.ok(a.github.stats.tokensIssued - issued[i]! >= 3, `App ${a.id}: ${a.github.stats.tokensIssued - issued[i]!} tokens in 9 s of 3 s tokens`);
    assert.ok(a.github.stats.apiOk - okBefore[i]! > 20, `App ${a.id}'s GitHub answered only ${a.github.stats.apiOk - okBefore[i]!} calls: the context's requests did not go to its own GitHub`);
  }
});

test("the App endpoint with each App's JWT", async () => {
  const own = await get(`/app/installations/${apps[0]!.installation}`);
  assert.equal(own.status, 200, own.body);
  assert.equal((JSON.parse(own.body) as { app_id: number }).app_id, Number(apps[0]!.id));
  const ctx = await get(`/ctx/${contextId}/app/installations/${apps[1]!.installation}`);
  assert.equal(ctx.status, 200, ctx.body);
  assert.equal((JSON.parse(ctx.body) as { app_id: number }).app_id, Number(apps[1]!.id));
});

test("/systemcheck proves the connection's App token works, one entry per connection", async () => {
  const r = await request(`${clientUrl}/systemcheck`, { reset: true });
  const body = (await r.body.json()) as Array<Record<string, unknown>>;
  const app = body.find((e) => e.connection === 'ghes via app' && e.githubAppValidationUrlStatusCode !== undefined);
  assert.ok(app, JSON.stringify(body));
  assert.equal(app.ok, true, JSON.stringify(body));
  assert.equal(app.githubAppValidationUrlStatusCode, 200);
});

test('no key, JWT or token in any log line (debug level)', () => {
  const out = group.allOutput();
  for (const a of apps) {
    assert.ok(a.github.credentials.size > 3, 'too few credentials seen for this check to mean anything');
    for (const secret of a.github.credentials) if (secret.length > 8) assert.ok(!out.includes(secret), `a credential (${secret.slice(0, 6)}…) is in the logs`);
    assert.ok(!out.includes(a.pem.split('\n')[1]!), 'a private key is in the logs');
  }
  assert.ok(!out.includes(api.clientSecret));
  void client;
});
