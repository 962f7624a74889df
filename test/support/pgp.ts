// OpenPGP keys for the commit signing tests, and GnuPG (Debian's gpg, a second implementation)
// to verify what the client signs: each check runs in a throw-away GNUPGHOME that holds only
// the test key's public half.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generateKey } from 'openpgp';

const run = promisify(execFile);

export interface TestKey {
  /** Armored private key, locked with `passphrase`. */
  privateKey: string;
  publicKey: string;
  passphrase: string;
}

/** A key as `gpg --full-generate-key` would make for a bot: an ECC (ed25519) or an RSA 2048 one. */
export async function makeTestKey(kind: 'ecc' | 'rsa', identity = { name: 'Snyk Fix Bot', email: 'fix-bot@example.com' }, passphrase = 'correct horse battery staple'): Promise<TestKey> {
  const key = kind === 'rsa' ? await generateKey({ type: 'rsa', rsaBits: 2048, userIDs: [identity], passphrase, format: 'armored' }) : await generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [identity], passphrase, format: 'armored' });
  return { privateKey: key.privateKey, publicKey: key.publicKey, passphrase };
}

/** A GNUPGHOME holding `publicKey`, for gpg and `git verify-commit`. */
export async function gpgHome(publicKey: string): Promise<{ dir: string; close(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'gnupg-'));
  await writeFile(join(dir, 'key.asc'), publicKey);
  await run('gpg', ['--homedir', dir, '--batch', '--quiet', '--import', join(dir, 'key.asc')]);
  // Trusted, so gpg says "Good signature" without a trust warning changing its exit code.
  const { stdout } = await run('gpg', ['--homedir', dir, '--batch', '--with-colons', '--fingerprint']);
  const fpr = /^fpr:+([0-9A-F]+):/m.exec(stdout)?.[1];
  if (fpr) await run('bash', ['-c', `echo "${fpr}:6:" | gpg --homedir "${dir}" --batch --import-ownertrust`]);
  return { dir, close: () => rm(dir, { recursive: true, force: true }) };
}

/** `gpg --verify` of a detached armored signature over `text`: whether it is good, and gpg's words. */
export async function gpgVerify(home: string, text: string | Buffer, signature: string): Promise<{ good: boolean; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'gpg-verify-'));
  try {
    await writeFile(join(dir, 'data'), text);
    await writeFile(join(dir, 'data.asc'), `${signature}\n`);
    try {
      const { stderr } = await run('gpg', ['--homedir', home, '--batch', '--status-fd', '2', '--verify', join(dir, 'data.asc'), join(dir, 'data')]);
      return { good: /\[GNUPG:\] GOODSIG /.test(stderr) && /\[GNUPG:\] VALIDSIG /.test(stderr), output: stderr };
    } catch (err) {
      return { good: false, output: String((err as { stderr?: string }).stderr ?? err) };
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
