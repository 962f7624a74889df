// Commit signing in classic mode (issue 21, item 3): our client with GIT_COMMITTER_* and GPG_*
// and an ACCEPT file without any Git Data API rule (so the signing rules it adds are what lets the
// calls through), against a fake GitHub that writes each commit into a real repository as GitHub
// would. git itself then checks the signature on the stored object (`git verify-commit`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FAILURES } from '../../src/protocol/failures.js';
import { platformRequest, startBrokerPair, type BrokerPair } from '../support/broker-pair.js';
import { startFakeGitData, type FakeGitData } from '../support/fake-git-data.js';
import { gpgHome, makeTestKey, type TestKey } from '../support/pgp.js';
import { makeTestPki } from '../support/tls.js';

const run = promisify(execFile);
const GITHUB_TOKEN = 'ghp_commitSigningTestToken0123456789';
const COMMITTER = { name: 'Snyk Fix Bot', email: 'fix-bot@example.com' };

let dir: string;
let gitDir: string;
let key: TestKey;
let home: { dir: string; close(): Promise<void> };
let github: FakeGitData;
let pair: BrokerPair;
let tree: string;
let parent: string;

/** A bare repository with one commit, for a real tree and parent. */
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

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'commit-signing-'));
  const pki = await makeTestPki();
  key = await makeTestKey('ecc', COMMITTER);
  home = await gpgHome(key.publicKey);
  await makeRepo();
  github = await startFakeGitData({ cert: pki.cert, key: pki.key, gitDir });
  const accept = join(dir, 'accept.json');
  await writeFile(accept, JSON.stringify({ private: [{ method: 'GET', path: '/repos/:name/:repo', origin: 'https://${GITHUB_TOKEN}@${GITHUB_API}' }], public: [] }));
  pair = await startBrokerPair({
    originUrl: 'http://127.0.0.1:9',
    clientEnv: {
      ACCEPT: accept,
      GITHUB_TOKEN,
      GITHUB_API: github.host,
      CA_CERT: pki.caFile,
      GIT_COMMITTER_NAME: COMMITTER.name,
      GIT_COMMITTER_EMAIL: COMMITTER.email,
      GPG_PASSPHRASE: key.passphrase,
      // As a Docker env file hands it over: one line with literal \n.
      GPG_PRIVATE_KEY: key.privateKey.replace(/\n/g, '\\n'),
      LOG_LEVEL: 'debug',
      LOG_ENABLE_BODY: 'true',
    },
  });
});

after(async () => {
  await pair?.stop();
  await github?.close();
  await home?.close();
});

function post(path: string, body: unknown) {
  return platformRequest(pair.platformUrl(path), { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' }, deadlineMs: 30_000 });
}

test("a commit made through the broker is stored with the configured committer and a signature git verifies", async () => {
  const payload = { message: 'fix: upgrade lodash to 4.17.21\n', tree, parents: [parent], author: { name: 'snyk-bot', email: 'snyk-bot@snyk.io', date: '2026-12-07T10:11:12Z' } };
  const r = await post('/repos/org/repo/git/commits', payload);
  assert.equal(r.status, 201, r.body.toString());
  const { sha } = JSON.parse(r.body.toString()) as { sha: string };
  const sent = github.requests.find((q) => q.path === '/repos/org/repo/git/commits');
  assert.ok(sent, 'GitHub got the commit');
  assert.equal(sent.authorization, `token ${GITHUB_TOKEN}`, "sent with the rule origin's credential");
  const body = JSON.parse(sent.body) as { committer: { name: string; email: string }; signature?: string };
  assert.deepEqual({ name: body.committer.name, email: body.committer.email }, COMMITTER);
  assert.match(body.signature ?? '', /^-----BEGIN PGP SIGNATURE-----/);
  const verify = await run('git', ['--git-dir', gitDir, 'verify-commit', '--raw', sha], { env: { ...process.env, GNUPGHOME: home.dir } }).then(
    (x) => ({ ok: true, out: x.stderr }),
    (err: { stderr?: string }) => ({ ok: false, out: String(err.stderr) }),
  );
  assert.ok(verify.ok && /GOODSIG/.test(verify.out), `git verify-commit: ${verify.out}`);
  const object = (await run('git', ['--git-dir', gitDir, 'cat-file', 'commit', sha])).stdout;
  assert.match(object, new RegExp(`^committer ${COMMITTER.name} <${COMMITTER.email}> \\d+ \\+0000$`, 'm'));
  assert.match(object, /^author snyk-bot <snyk-bot@snyk\.io> 1796638272 \+0000$/m);
});

test('a tree with a symlink is refused as snyk-broker refuses it (401) and never reaches GitHub; a plain tree goes through', async () => {
  const before = github.requests.length;
  const r = await post('/repos/org/repo/git/trees', { base_tree: tree, tree: [{ path: 'node_modules/x', mode: '120000', type: 'blob', content: '/etc/passwd' }] });
  assert.equal(r.status, 401);
  assert.equal(r.failure, FAILURES.GIT_TREE_REFUSED.reason);
  assert.equal(r.body.toString(), 'Symlinks are not allowed in GitHub tree payload: node_modules/x');
  assert.equal(github.requests.length, before, 'GitHub got the refused tree');
  const ok = await post('/repos/org/repo/git/trees', { base_tree: tree, tree: [{ path: 'package.json', mode: '100644', type: 'blob', content: '{}' }] });
  assert.equal(ok.status, 201, ok.body.toString());
  assert.equal(github.requests.length, before + 1);
});

test('a commit that cannot be signed is answered with why and not sent (snyk-broker would send it unsigned)', async () => {
  const before = github.requests.length;
  const r = await post('/repos/org/repo/git/commits', { message: 'no author', tree, parents: [parent] });
  assert.equal(r.status, 400);
  assert.equal(r.failure, FAILURES.COMMIT_PAYLOAD_INVALID.reason);
  assert.match(r.body.toString(), /^Commit not signed, so not sent: author must be an object/);
  const notJson = await post('/repos/org/repo/git/commits', 'tree=abc');
  assert.equal(notJson.status, 400);
  assert.equal(github.requests.length, before, 'GitHub got an unsigned commit');
});

test('the start line names the key; no log line holds the key or its passphrase', async () => {
  const logs = pair.client.output();
  assert.match(logs, /commit signing: commits made through GitHub's Git Data API are signed/);
  assert.match(logs, /"keyId":"[0-9A-F]{16}"/);
  assert.match(logs, /signed a commit/);
  assert.ok(!logs.includes(key.passphrase), 'the passphrase is in the logs');
  // Any 40-character run of the armored key's base64 body.
  const keyBody = key.privateKey.split('\n').filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l));
  assert.ok(keyBody.length > 2);
  for (const line of keyBody) assert.ok(!logs.includes(line.slice(0, 40)), 'key material is in the logs');
  assert.ok(!logs.includes(GITHUB_TOKEN), 'the GitHub token is in the logs');
});
