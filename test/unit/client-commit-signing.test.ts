// Commit signing (issue 21, item 3): the settings' checks, the commit object the signature covers
// compared with snyk-broker's own on the same payloads, signatures proved with GnuPG (ours and the
// package's own signing on the same text), the symlink check against snyk-broker's, and the rules.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { readCommitSigning, type CommitSigningConfig } from '../../src/config/commit-signing.js';
import { EnvReader } from '../../src/config/env.js';
import { createCommitSigner } from '../../src/client/commit-signing/commit-signer.js';
import { CommitPayloadError, commitObjectText, rebuildCommitPayload } from '../../src/client/commit-signing/git-commit.js';
import { checkTreePayload, TreePayloadError } from '../../src/client/commit-signing/git-tree.js';
import { COMMIT_SIGNING_RULES } from '../../src/filters/index.js';
import { gpgHome, gpgVerify, makeTestKey, type TestKey } from '../support/pgp.js';
import { SNYK_BROKER_DIR } from '../support/paths.js';

const require = createRequire(import.meta.url);
const SCM = join(SNYK_BROKER_DIR, 'dist', 'lib', 'hybrid-sdk', 'client', 'scm');
const snykCommit = require(join(SCM, 'github', 'commit.js')) as {
  convertBodyToGitHubCommitPayload(body: string, o: { committerName: string; committerEmail: string }): unknown;
  stringifyGitHubCommitPayload(c: unknown): string;
};
const snykTree = require(join(SCM, 'github', 'tree.js')) as { convertBodyToGitHubTreePayload(body: string): unknown; validateForSymlinksInCreateTree(t: unknown): void };
const snykSign = require(join(SCM, 'pgp', 'sign.js')) as { createSignature(o: { messageRaw: string; privateKey: { armoredKey: string; passphrase: string } }): Promise<string> };
const snykRules = require(join(SCM, 'github', 'commit-signing-filter-rules.js')) as { getCommitSigningGitHubFilterRules(): unknown[] };

const COMMITTER = { name: 'Snyk Fix Bot', email: 'fix-bot@example.com' };
const TREE = 'a'.repeat(40);
const PARENT = 'b'.repeat(40);
let ecc: TestKey;
let rsa: TestKey;
let eccHome: { dir: string; close(): Promise<void> };
let rsaHome: { dir: string; close(): Promise<void> };

before(async () => {
  [ecc, rsa] = await Promise.all([makeTestKey('ecc'), makeTestKey('rsa')]);
  [eccHome, rsaHome] = await Promise.all([gpgHome(ecc.publicKey), gpgHome(rsa.publicKey)]);
});
after(async () => {
  await eccHome?.close();
  await rsaHome?.close();
});

function envFor(key: TestKey, extra: Record<string, string> = {}): Record<string, string> {
  return { GIT_COMMITTER_NAME: COMMITTER.name, GIT_COMMITTER_EMAIL: COMMITTER.email, GPG_PASSPHRASE: key.passphrase, GPG_PRIVATE_KEY: key.privateKey, ...extra };
}

async function read(env: Record<string, string>): Promise<{ config?: CommitSigningConfig; problems: string[] }> {
  const r = new EnvReader(env);
  const config = await readCommitSigning(r);
  try {
    r.done();
    return { config, problems: [] };
  } catch (err) {
    return { config, problems: (err as { problems: string[] }).problems };
  }
}

test('settings: all four or none; a missing one, a wrong passphrase or a public key stops the start naming it', async () => {
  assert.deepEqual(await read({}), { config: undefined, problems: [] });
  const ok = await read(envFor(ecc));
  assert.deepEqual(ok.problems, []);
  assert.equal(ok.config?.committerName, COMMITTER.name);
  assert.match(ok.config?.keyId ?? '', /^[0-9A-F]{16}$/);
  const partial = await read({ GPG_PRIVATE_KEY: ecc.privateKey, GIT_COMMITTER_NAME: 'x' });
  assert.deepEqual(partial.problems, ['commit signing: GIT_COMMITTER_NAME, GPG_PRIVATE_KEY are set but GIT_COMMITTER_EMAIL, GPG_PASSPHRASE are not; signing needs all of GIT_COMMITTER_NAME, GIT_COMMITTER_EMAIL, GPG_PASSPHRASE, GPG_PRIVATE_KEY']);
  const wrong = await read(envFor(ecc, { GPG_PASSPHRASE: 'not it' }));
  assert.match(wrong.problems[0] ?? '', /^GPG_PASSPHRASE does not unlock GPG_PRIVATE_KEY/);
  const pub = await read(envFor(ecc, { GPG_PRIVATE_KEY: ecc.publicKey }));
  assert.match(pub.problems[0] ?? '', /^GPG_PRIVATE_KEY: a public key/);
  const garbage = await read(envFor(ecc, { GPG_PRIVATE_KEY: '-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nnot a key\n-----END PGP PRIVATE KEY BLOCK-----' }));
  assert.match(garbage.problems[0] ?? '', /^GPG_PRIVATE_KEY: not a readable OpenPGP private key/);
  const badEmail = await read(envFor(ecc, { GIT_COMMITTER_EMAIL: 'Bot <bot@example.com>' }));
  assert.match(badEmail.problems[0] ?? '', /^GIT_COMMITTER_EMAIL: .* is not an e-mail address/);
  for (const p of [...wrong.problems, ...pub.problems, ...garbage.problems]) {
    assert.ok(!p.includes(ecc.passphrase) && !p.includes('not it'), 'a problem quotes the passphrase');
  }
});

test("settings: the key with literal \\n (Docker env files), and Snyk's Universal chart's GIT_COMMITER_* spelling", async () => {
  const escaped = await read(envFor(rsa, { GPG_PRIVATE_KEY: rsa.privateKey.replace(/\n/g, '\\n') }));
  assert.deepEqual(escaped.problems, []);
  const chart = await read({ GIT_COMMITER_NAME: 'Chart Bot', GIT_COMMITER_EMAIL: 'chart@example.com', GPG_PASSPHRASE: ecc.passphrase, GPG_PRIVATE_KEY: ecc.privateKey });
  assert.deepEqual(chart.problems, []);
  assert.equal(chart.config?.committerName, 'Chart Bot');
  assert.equal(chart.config?.committerEmail, 'chart@example.com');
  assert.ok(chart.config?.secrets.includes(ecc.passphrase), 'the passphrase goes to the log scrubber');
});

const PAYLOADS: Record<string, unknown> = {
  'a fix commit': { message: 'fix: upgrade lodash to 4.17.21\n\nSnyk fixed 2 vulnerabilities', tree: TREE, parents: [PARENT], author: { name: 'Snyk', email: 'snyk@example.com', date: '2026-12-07T10:11:12Z' } },
  'with a committer date and extra fields': { message: 'chore: x', tree: TREE, parents: [PARENT], author: { name: 'A B', email: 'a@b.c', date: '2026-01-02T03:04:05.678Z' }, committer: { name: 'ignored', email: 'ignored@x', date: '2026-01-02T03:04:06Z' }, signature: 'dropped', owner: 'o' },
  'a message ending with a newline': { message: 'feat: y\n', tree: TREE, parents: [PARENT], author: { name: 'ünïcødé', email: 'u@example.com', date: '2026-06-01T00:00:00+02:00' }, committer: { date: '2026-06-01T00:00:01Z' } },
};

test("the commit object is snyk-broker's for the same payload (one parent); our body carries the same fields and dates", () => {
  const fixed = new Date('2026-12-07T12:00:00Z');
  for (const [name, payload] of Object.entries(PAYLOADS)) {
    const body = JSON.stringify(payload);
    const ours = commitObjectText(rebuildCommitPayload(body, COMMITTER, fixed));
    const theirs = snykCommit.stringifyGitHubCommitPayload(snykCommit.convertBodyToGitHubCommitPayload(body, { committerName: COMMITTER.name, committerEmail: COMMITTER.email }));
    if ((payload as { committer?: { date?: string } }).committer?.date) assert.equal(ours, theirs, name);
    // Without a committer date both take "now": equal but for that second.
    else assert.equal(ours.replace(/committer (.*) \d+ \+0000/, 'committer $1 T +0000'), theirs.replace(/committer (.*) \d+ \+0000/, 'committer $1 T +0000'), name);
  }
});

test('the commit object where snyk-broker is wrong: every parent, none for a root commit; bad payloads are refused naming the field', () => {
  const merge = rebuildCommitPayload(JSON.stringify({ message: 'Merge', tree: TREE, parents: [PARENT, 'c'.repeat(40)], author: { name: 'a', email: 'a@x', date: '2026-01-01T00:00:00Z' }, committer: { date: '2026-01-01T00:00:00Z' } }), COMMITTER);
  assert.equal(commitObjectText(merge), `tree ${TREE}\nparent ${PARENT}\nparent ${'c'.repeat(40)}\nauthor a <a@x> 1767225600 +0000\ncommitter Snyk Fix Bot <fix-bot@example.com> 1767225600 +0000\n\nMerge`);
  const root = rebuildCommitPayload(JSON.stringify({ message: 'first', tree: TREE, author: { name: 'a', email: 'a@x', date: '2026-01-01T00:00:00Z' } }), COMMITTER, new Date('2026-01-01T00:00:00Z'));
  assert.ok(!commitObjectText(root).includes('parent'), 'a root commit has no parent line');
  const refused: Array<[unknown, RegExp]> = [
    ['not json', /not JSON/],
    [{ message: 'm', tree: 'abc', author: { name: 'a', email: 'a@x' } }, /tree must be a full tree SHA/],
    [{ message: 'm', tree: TREE, parents: ['HEAD'], author: { name: 'a', email: 'a@x' } }, /parents must be an array of full commit SHAs/],
    [{ message: 'm', tree: TREE }, /author must be an object/],
    [{ message: 'm', tree: TREE, author: { name: 'a\nb', email: 'a@x' } }, /author.name has a character/],
    [{ message: 'm', tree: TREE, author: { name: 'a', email: 'a@x', date: 'yesterday' } }, /author.date must be an ISO 8601 date/],
  ];
  for (const [payload, why] of refused) {
    assert.throws(() => rebuildCommitPayload(typeof payload === 'string' ? payload : JSON.stringify(payload), COMMITTER), (err: unknown) => err instanceof CommitPayloadError && why.test(err.message));
  }
});

test('signatures: ours and snyk-broker\'s own signing over the same commit text both verify with gpg (ECC and RSA keys); a changed byte does not', async () => {
  for (const [key, home] of [[ecc, eccHome], [rsa, rsaHome]] as const) {
    const { config } = await read(envFor(key));
    const signer = createCommitSigner(config!);
    const body = JSON.stringify(PAYLOADS['a fix commit']);
    const signed = JSON.parse(await signer.signCommitBody(body)) as { signature: string; committer: { date: string } } & Record<string, unknown>;
    assert.match(signed.signature, /^-----BEGIN PGP SIGNATURE-----\n[\s\S]+\n-----END PGP SIGNATURE-----$/);
    assert.ok(!signed.signature.includes('\r'), 'LF line ends, as GitHub stores gpgsig');
    const text = commitObjectText(rebuildCommitPayload(JSON.stringify({ ...signed, signature: undefined }), COMMITTER));
    const ours = await gpgVerify(home.dir, text, signed.signature);
    assert.ok(ours.good, ours.output);
    const theirs = await snykSign.createSignature({ messageRaw: text, privateKey: { armoredKey: key.privateKey, passphrase: key.passphrase } });
    const snyk = await gpgVerify(home.dir, text, theirs);
    assert.ok(snyk.good, snyk.output);
    const tampered = await gpgVerify(home.dir, text.replace('lodash', 'lodasH'), signed.signature);
    assert.equal(tampered.good, false, 'a changed commit verifies');
  }
});

const TREES: Record<string, unknown> = {
  'blobs only': { base_tree: TREE, tree: [{ path: 'package.json', mode: '100644', type: 'blob', content: '{}' }] },
  'a symlink': { tree: [{ path: 'a.txt', mode: '100644', type: 'blob', sha: PARENT }, { path: 'link', mode: '120000', type: 'blob', content: '/etc/passwd' }] },
  'a symlink by sha': { tree: [{ path: 'l1', mode: '120000', type: 'blob', sha: PARENT }, { path: 'l2', mode: '120000', type: 'blob', content: 'x' }] },
  'a symlink deleted': { tree: [{ path: 'link', mode: '120000', type: 'blob', sha: null }] },
  'a deletion that writes content': { tree: [{ path: 'link', mode: '120000', type: 'blob', sha: null, content: '../../secret' }] },
};

test("the tree check decides as snyk-broker's and says the same; a body that is not a tree is refused", () => {
  for (const [name, payload] of Object.entries(TREES)) {
    const body = JSON.stringify(payload);
    let theirs: string | undefined;
    try {
      snykTree.validateForSymlinksInCreateTree(snykTree.convertBodyToGitHubTreePayload(body));
    } catch (err) {
      theirs = (err as Error).message;
    }
    let ours: string | undefined;
    try {
      checkTreePayload(body);
    } catch (err) {
      assert.ok(err instanceof TreePayloadError);
      ours = err.message;
    }
    assert.equal(ours, theirs, name);
  }
  assert.throws(() => checkTreePayload('{'), /Could not parse GitHub create tree payload body/);
  assert.throws(() => checkTreePayload(undefined), /Could not parse/);
  assert.throws(() => checkTreePayload('{"tree":"x"}'), /no tree array/);
});

test("the added accept rules are snyk-broker's", () => {
  assert.deepEqual(COMMIT_SIGNING_RULES, snykRules.getCommitSigningGitHubFilterRules());
});
