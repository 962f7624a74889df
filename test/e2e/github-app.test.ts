// GitHub App authentication in classic mode (issue 21): our client with Snyk's github-server-app
// preset and GITHUB_APP_* against a fake GitHub that checks each JWT's signature with the App's
// public key and hands out tokens that live 3 s, so steady load crosses many refreshes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { startBrokerPair, type BrokerPair } from '../support/broker-pair.js';
import { startFakeGithub, type FakeGithub } from '../support/fake-github.js';
import { makeTestPki, type TestPki } from '../support/tls.js';
import { ProcessGroup } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);
const APP_ID = '424242';
const INSTALLATION_ID = '31337';
const TOKEN_TTL_MS = 3000;

let pki: TestPki;
let github: FakeGithub;
let pair: BrokerPair;
let dir: string;
let keyPath: string;
let privatePem: string;

/** A bare repository org/repo.git with one commit holding README.md. */
async function makeRepo(root: string): Promise<void> {
  const work = join(dir, 'work');
  const git = (args: string[], cwd: string) => run('git', args, { cwd, env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com', GIT_CONFIG_NOSYSTEM: '1', HOME: dir } });
  await mkdir(work, { recursive: true });
  await git(['init', '-q', '-b', 'main'], work);
  await writeFile(join(work, 'README.md'), 'cloned through the broker with an App token\n');
  await git(['add', 'README.md'], work);
  await git(['commit', '-q', '-m', 'first'], work);
  await mkdir(join(root, 'org'), { recursive: true });
  await git(['clone', '-q', '--bare', work, join(root, 'org', 'repo.git')], dir);
}

function appEnv(): Record<string, string> {
  return {
    ACCEPT: '',
    BROKER_SCM_TYPE: 'github-server-app',
    ACCEPT_CODE: 'true',
    GITHUB: github.host,
    GITHUB_API: github.host,
    GITHUB_RAW: github.host,
    GITHUB_GRAPHQL: github.host,
    GITHUB_APP_ID: APP_ID,
    GITHUB_APP_CLIENT_ID: 'Iv1.0123456789abcdef',
    GITHUB_APP_INSTALLATION_ID: INSTALLATION_ID,
    GITHUB_APP_PRIVATE_PEM_PATH: keyPath,
    CA_CERT: pki.caFile,
    LOG_LEVEL: 'debug',
  };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'github-app-'));
  pki = await makeTestPki();
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  // GitHub hands out PKCS#1 ("BEGIN RSA PRIVATE KEY") files.
  privatePem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  keyPath = join(dir, 'app.private-key.pem');
  await writeFile(keyPath, privatePem, { mode: 0o600 });
  await makeRepo(join(dir, 'repos'));
  github = await startFakeGithub({ appId: APP_ID, installationId: INSTALLATION_ID, publicKey, tokenTtlMs: TOKEN_TTL_MS, cert: pki.cert, key: pki.key, repoRoot: join(dir, 'repos') });
  pair = await startBrokerPair({ originUrl: 'http://127.0.0.1:9', clientEnv: appEnv() });
});

after(async () => {
  await pair?.stop();
  await github?.close();
});

async function platformGet(path: string): Promise<{ status: number; body: string; failure?: string }> {
  const r = await request(pair.platformUrl(path), { reset: true, headersTimeout: 30_000, bodyTimeout: 30_000 });
  return { status: r.statusCode, body: await r.body.text(), failure: r.headers['x-broker-failure'] as string | undefined };
}

/** GETs of a repository at `perSecond` for `ms`, 4 at a time; the failures. */
async function steadyGets(ms: number, perSecond: number): Promise<{ sent: number; failed: string[] }> {
  const failed: string[] = [];
  let sent = 0;
  const end = Date.now() + ms;
  const worker = async () => {
    while (Date.now() < end) {
      const started = Date.now();
      sent++;
      const r = await platformGet(`/repos/org/repo?n=${sent}`);
      if (r.status !== 200) failed.push(`${r.status} ${r.failure ?? ''} ${r.body.slice(0, 200)}`);
      const pause = 4000 / perSecond - (Date.now() - started);
      if (pause > 0) await new Promise((r) => setTimeout(r, pause));
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  return { sent, failed };
}

test('steady load across many 3 s token lifetimes: every request answered, none with an expired token', async () => {
  const issuedBefore = github.stats.tokensIssued;
  const { sent, failed } = await steadyGets(12_000, 40);
  assert.deepEqual(failed, [], `${failed.length} of ${sent} failed`);
  assert.ok(sent > 200, `only ${sent} requests were sent`);
  assert.equal(github.stats.expiredUses, 0, 'a request reached GitHub with an expired token');
  assert.equal(github.stats.badAuth, 0, 'a request reached GitHub without a token it issued');
  assert.equal(github.stats.jwtRefused, 0, 'GitHub refused a JWT');
  // 12 s of 3 s tokens refreshed a quarter of their life early: at least 4 new ones.
  assert.ok(github.stats.tokensIssued - issuedBefore >= 4, `${github.stats.tokensIssued - issuedBefore} tokens issued in 12 s`);
});

test('the token endpoint down for longer than a token lives: requests wait for the refresh, none fails, none goes out expired', async () => {
  const load = steadyGets(10_000, 20);
  // Down right after a token was issued, until after it expired: every request in between needs the refresh.
  const issued = github.stats.tokensIssued;
  await waitFor('a fresh token', () => github.stats.tokensIssued > issued, { timeoutMs: 10_000, intervalMs: 10 });
  github.tokenEndpoint = 'down';
  await new Promise((r) => setTimeout(r, TOKEN_TTL_MS + 1000));
  github.tokenEndpoint = 'ok';
  const { sent, failed } = await load;
  assert.deepEqual(failed, [], `${failed.length} of ${sent} failed`);
  assert.equal(github.stats.expiredUses, 0, 'a request reached GitHub with an expired token');
  assert.ok(pair.client.output().includes('GitHub App installation token refresh failed'), 'the outage was not noticed');
});

test('the App endpoint with the JWT: GET /app/installations/:id', async () => {
  const r = await platformGet(`/app/installations/${INSTALLATION_ID}`);
  assert.equal(r.status, 200, r.body);
  assert.equal((JSON.parse(r.body) as { app_id: number }).app_id, Number(APP_ID));
});

test('git clone through the broker with the installation token (x-access-token)', async () => {
  const dest = join(dir, 'clone');
  const url = pair.platformUrl('/org/repo.git');
  await run('git', ['clone', '-q', url, dest], { env: { ...process.env, GIT_TERMINAL_PROMPT: '0', HOME: dir, GIT_CONFIG_NOSYSTEM: '1' }, timeout: 60_000 });
  assert.equal(await readFile(join(dest, 'README.md'), 'utf8'), 'cloned through the broker with an App token\n');
  assert.ok(github.stats.gitRequests >= 2);
});

test('/systemcheck proves the App token works', async () => {
  const r = await request(`http://127.0.0.1:${pair.clientPort}/systemcheck`, { reset: true });
  const body = (await r.body.json()) as Array<Record<string, unknown>>;
  assert.equal(r.statusCode, 200, JSON.stringify(body));
  assert.equal(body[0]!.ok, true);
  assert.equal(body[0]!.githubAppValidationUrlStatusCode, 200);
});

test('no key, JWT or token in any log line', () => {
  const out = pair.group.allOutput();
  assert.ok(github.credentials.size > 5, 'the fake GitHub saw too few credentials for this check to mean anything');
  for (const secret of github.credentials) if (secret.length > 8) assert.ok(!out.includes(secret), `a credential (${secret.slice(0, 6)}…) is in the logs`);
  const keyBody = privatePem.split('\n')[1]!;
  assert.ok(!out.includes(keyBody), 'the private key is in the logs');
});

test('GitHub refusing the App at start (a wrong App ID): exit 2 naming it', async () => {
  const group = new ProcessGroup();
  try {
    const env = { ...appEnv(), GITHUB_APP_ID: '999', BROKER_TOKEN: 'a-token-for-this-test', BROKER_SERVER_URL: pair.serverUrl, PORT: '0', PREFLIGHT_CHECKS_ENABLED: 'false' };
    const p = group.broker('client-wrong-app', 'client', env);
    const code = await waitFor('the client to exit', () => (p.child.exitCode ?? undefined), { timeoutMs: 30_000, intervalMs: 100 });
    assert.equal(code, 2, p.output());
    assert.match(p.output(), /GitHub refused the App JWT: GITHUB_APP_ID 999/);
  } finally {
    await group.stopAll();
  }
});

test('a GitHub App key file that is not a key: exit 2 naming GITHUB_APP_PRIVATE_PEM_PATH', async () => {
  const group = new ProcessGroup();
  try {
    const bad = join(dir, 'not-a-key.pem');
    await writeFile(bad, 'hello\n');
    const env = { ...appEnv(), GITHUB_APP_PRIVATE_PEM_PATH: bad, BROKER_TOKEN: 'a-token-for-this-test', BROKER_SERVER_URL: pair.serverUrl, PORT: '0', PREFLIGHT_CHECKS_ENABLED: 'false' };
    const p = group.broker('client-bad-key', 'client', env);
    const code = await waitFor('the client to exit', () => (p.child.exitCode ?? undefined), { timeoutMs: 30_000, intervalMs: 100 });
    assert.equal(code, 2, p.output());
    assert.match(p.output(), /GITHUB_APP_PRIVATE_PEM_PATH: .*not-a-key\.pem is not a PEM private key/);
  } finally {
    await group.stopAll();
  }
});
