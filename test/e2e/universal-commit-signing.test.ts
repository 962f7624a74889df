// Commit signing per connection in Universal Broker mode (issues 20 and 21): two GitHub
// connections of one deployment on one fake GitHub (which writes each commit into a real
// repository); one carries the committer and the key as credential references, the other none.
// git checks the signed commit's signature (`git verify-commit`); the other's commit is unsigned.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { startFakeGitData, type FakeGitData } from '../support/fake-git-data.js';
import { gpgHome, makeTestKey, type TestKey } from '../support/pgp.js';
import { makeTestPki } from '../support/tls.js';
import { ProcessGroup } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { waitFor } from '../support/wait.js';
import { readyTunnels } from '../support/connection-status.js';
import { httpStatus } from '../support/http-status.js';
import { startFakeSnykApi, type FakeSnykApi, universalClientEnv } from '../support/fake-snyk-api.js';

const run = promisify(execFile);
const SIGNED_TOKEN = `ghp_signed${randomUUID().replace(/-/g, '')}`;
const PLAIN_TOKEN = `ghp_plain${randomUUID().replace(/-/g, '')}`;
const COMMITTER = { name: 'Snyk Fix Bot', email: 'fix-bot@example.com' };
const signedId = randomUUID();
const plainId = randomUUID();
const group = new ProcessGroup();
let dir: string;
let gitDir: string;
let key: TestKey;
let home: { dir: string; close(): Promise<void> };
let github: FakeGitData;
let api: FakeSnykApi;
let serverUrl: string;
let tree: string;
let parent: string;

async function makeRepo(): Promise<void> {
  const work = join(dir, 'work');
  const env = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com', GIT_CONFIG_NOSYSTEM: '1', HOME: dir };
  const git = (args: string[], cwd: string) => run('git', args, { cwd, env });
  await mkdir(work, { recursive: true });
  await git(['init', '-q', '-b', 'main'], work);
  await writeFile(join(work, 'package.json'), '{"dependencies":{"lodash":"4.17.20"}}\n');
  await git(['add', '.'], work);
  await git(['commit', '-q', '-m', 'first'], work);
  gitDir = join(dir, 'repo.git');
  await git(['clone', '-q', '--bare', work, gitDir], dir);
  parent = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  tree = (await git(['rev-parse', 'HEAD^{tree}'], work)).stdout.trim();
}

function ready(identifier: string): Promise<number> {
  return readyTunnels(serverUrl, identifier);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ub-commit-signing-'));
  const pki = await makeTestPki();
  key = await makeTestKey('ecc', COMMITTER);
  home = await gpgHome(key.publicKey);
  await makeRepo();
  github = await startFakeGitData({ cert: pki.cert, key: pki.key, gitDir });
  api = await startFakeSnykApi({
    connections: [
      {
        name: 'signed',
        type: 'github',
        identifier: signedId,
        required: { github_token: '${SIGNED_TOKEN}', github_api: github.host, git_committer_name: COMMITTER.name, git_committer_email: COMMITTER.email, gpg_passphrase: '${FIX_PR_PASSPHRASE}', gpg_private_key: '${FIX_PR_KEY}' },
      },
      { name: 'plain', type: 'github', identifier: plainId, required: { github_token: '${PLAIN_TOKEN}', github_api: github.host } },
    ],
  });
  const serverPort = await freePort();
  serverUrl = `http://127.0.0.1:${serverPort}`;
  group.broker('server', 'server', { PORT: String(serverPort), BROKER_SERVER_HOST: '127.0.0.1', ACCEPT: await writeAcceptFile({ public: [{ method: 'any', path: '/*' }], private: [] }) });
  await waitFor('server health', async () => (await httpStatus(`${serverUrl}/healthcheck`)) === 200, { timeoutMs: 30_000 });
  const clientPort = await freePort();
  group.broker('client', 'client', {
    ...universalClientEnv(api, serverUrl),
    BROKER_CLIENT_URL: `http://127.0.0.1:${clientPort}`,
    PORT: String(clientPort),
    CA_CERT: pki.caFile,
    PREFLIGHT_CHECKS_ENABLED: 'false',
    SIGNED_TOKEN,
    PLAIN_TOKEN,
    FIX_PR_PASSPHRASE: key.passphrase,
    // As a Kubernetes Secret from an env file may hand it over: one line with literal \n.
    FIX_PR_KEY: key.privateKey.replace(/\n/g, '\\n'),
    LOG_LEVEL: 'debug',
  });
  await waitFor('both connections have their tunnels', async () => (await ready(signedId)) === 2 && (await ready(plainId)) === 2, { timeoutMs: 30_000 });
});

after(async () => {
  await group.stopAll();
  await github?.close();
  await api?.close();
  await home?.close();
});

async function commit(identifier: string): Promise<{ sha: string; sent: { authorization?: string; body: string } }> {
  const before = github.requests.length;
  const payload = { message: 'fix: upgrade lodash to 4.17.21\n', tree, parents: [parent], author: { name: 'snyk-bot', email: 'snyk-bot@snyk.io', date: '2026-12-07T10:11:12Z' }, committer: { name: 'snyk-bot', email: 'snyk-bot@snyk.io', date: '2026-12-07T10:11:12Z' } };
  const r = await request(`${serverUrl}/broker/${identifier}/repos/org/repo/git/commits`, { method: 'POST', body: JSON.stringify(payload), headers: { 'content-type': 'application/json' }, reset: true });
  const text = await r.body.text();
  assert.equal(r.statusCode, 201, text);
  const sent = github.requests.slice(before).find((q) => q.path === '/repos/org/repo/git/commits');
  assert.ok(sent, 'GitHub got the commit');
  return { sha: (JSON.parse(text) as { sha: string }).sha, sent };
}

test("the signing connection's commit carries its committer and a signature git verifies", async () => {
  const { sha, sent } = await commit(signedId);
  assert.equal(sent.authorization, `token ${SIGNED_TOKEN}`);
  const body = JSON.parse(sent.body) as { committer: { name: string; email: string }; signature?: string };
  assert.deepEqual({ name: body.committer.name, email: body.committer.email }, COMMITTER);
  const verify = await run('git', ['--git-dir', gitDir, 'verify-commit', '--raw', sha], { env: { ...process.env, GNUPGHOME: home.dir } }).then(
    (x) => ({ ok: true, out: x.stderr }),
    (err: { stderr?: string }) => ({ ok: false, out: String(err.stderr) }),
  );
  assert.ok(verify.ok && /GOODSIG/.test(verify.out), `git verify-commit: ${verify.out}`);
});

test("the other connection's commit goes out as the platform sent it, unsigned", async () => {
  const { sent } = await commit(plainId);
  assert.equal(sent.authorization, `token ${PLAIN_TOKEN}`);
  const body = JSON.parse(sent.body) as { signature?: string; committer?: { name: string } };
  assert.equal(body.signature, undefined);
  assert.equal(body.committer?.name, 'snyk-bot', "the platform's committer, not the other connection's");
});

test('no log line holds the key, its passphrase or a token', () => {
  const logs = group.allOutput();
  assert.match(logs, /"connection":"signed"[^\n]*commit signing: commits made through GitHub's Git Data API are signed/);
  assert.ok(!logs.includes(key.passphrase), 'the passphrase is in the logs');
  const keyBody = key.privateKey.split('\n').filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l));
  assert.ok(keyBody.length > 2);
  for (const line of keyBody) assert.ok(!logs.includes(line.slice(0, 40)), 'key material is in the logs');
  for (const t of [SIGNED_TOKEN, PLAIN_TOKEN, api.clientSecret]) assert.ok(!logs.includes(t), 'a credential is in the logs');
});
