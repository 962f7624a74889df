import type { PrivateKey } from 'openpgp';
import type { EnvReader } from './env.js';

/**
 * Commit signing (Snyk's GIT_COMMITTER_* and GPG_*): commits the platform creates through
 * GitHub's Git Data API are rebuilt with this committer and signed with this key.
 */
export interface CommitSigningConfig {
  committerName: string;
  committerEmail: string;
  /** The key, unlocked with GPG_PASSPHRASE at start (so a wrong passphrase stops the start, not a fix PR). */
  signingKey: PrivateKey;
  /** For the start line: which key signs (never the key itself). */
  keyId: string;
  /** The armored key and its passphrase, for the log scrubber. */
  secrets: string[];
}

/**
 * The variables, in the order their problems are listed, with the names Snyk's Universal chart
 * writes into its signing Secret (`GIT_COMMITER_*`, one T): snyk-broker reads only the first
 * spelling, so signing set up through that chart never turns on there; here both work.
 */
const VARIABLES = [
  ['GIT_COMMITTER_NAME', 'GIT_COMMITER_NAME'],
  ['GIT_COMMITTER_EMAIL', 'GIT_COMMITER_EMAIL'],
  ['GPG_PASSPHRASE'],
  ['GPG_PRIVATE_KEY'],
] as const;

export const COMMIT_SIGNING_VARIABLES = VARIABLES.map(([name]) => name);

const BEGIN = '-----BEGIN PGP PRIVATE KEY BLOCK-----';
const END = '-----END PGP PRIVATE KEY BLOCK-----';

/**
 * The signing settings, or undefined when none is set. Any one set means all four must be:
 * Snyk turns signing off without a word when one is missing, and the fix PRs go out unsigned,
 * which a branch protection rule then refuses; here the start stops naming the missing ones.
 */
export async function readCommitSigning(r: EnvReader): Promise<CommitSigningConfig | undefined> {
  const values = VARIABLES.map((names) => r.raw(...names));
  const set = COMMIT_SIGNING_VARIABLES.filter((_, i) => values[i] !== undefined);
  if (set.length === 0) return undefined;
  const missing = COMMIT_SIGNING_VARIABLES.filter((_, i) => values[i] === undefined);
  if (missing.length) {
    r.problem(`commit signing: ${set.join(', ')} ${set.length === 1 ? 'is' : 'are'} set but ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not; signing needs all of ${COMMIT_SIGNING_VARIABLES.join(', ')}`);
    return undefined;
  }
  const [committerName, committerEmail, passphrase, rawKey] = values as string[];
  const identityOk = checkIdentity(r, committerName, committerEmail);
  const armored = normalizeArmoredKey(rawKey);
  const key = await unlockKey(r, armored, passphrase);
  if (!key || !identityOk) return undefined;
  return { committerName, committerEmail, signingKey: key.signingKey, keyId: key.keyId, secrets: [armored, rawKey, passphrase].filter((s) => s.length >= 4) };
}

/** A name or address with `<`, `>` or a line break would change the commit object's header lines. */
function checkIdentity(r: EnvReader, name: string, email: string): boolean {
  let ok = true;
  if (/[<>\r\n]/.test(name)) {
    r.problem(`GIT_COMMITTER_NAME: ${JSON.stringify(name)} has a character a git identity cannot hold (<, > or a line break)`);
    ok = false;
  }
  if (/[<>\s]/.test(email) || !email.includes('@')) {
    r.problem(`GIT_COMMITTER_EMAIL: ${JSON.stringify(email)} is not an e-mail address (the one GitHub knows the signing key by)`);
    ok = false;
  }
  return ok;
}

/** Docker and some secret stores hand a multi-line value over with literal `\n`s, as Snyk notes; both forms are taken. */
export function normalizeArmoredKey(value: string): string {
  return value.replace(/\\r\\n|\\n/g, '\n').replace(/\r\n/g, '\n').trim();
}

/**
 * Reads and unlocks the key, and signs once with it, so a key that cannot sign (wrong
 * passphrase, expired, no signing subkey, a public key) stops the start with what is wrong.
 * openpgp is loaded only here: a client without signing never carries it.
 */
async function unlockKey(r: EnvReader, armored: string, passphrase: string): Promise<{ signingKey: PrivateKey; keyId: string } | undefined> {
  if (!armored.startsWith(BEGIN) || !armored.endsWith(END)) {
    const what = armored.startsWith('-----BEGIN PGP PUBLIC KEY BLOCK-----') ? 'a public key' : 'not an armored private key';
    r.problem(`GPG_PRIVATE_KEY: ${what}; it must be the output of \`gpg --armor --export-secret-keys <key id>\`, from ${BEGIN} to ${END}`);
    return undefined;
  }
  const pgp = await import('openpgp');
  let key: PrivateKey;
  try {
    key = await pgp.readPrivateKey({ armoredKey: armored });
  } catch (err) {
    // openpgp's messages name the packet that is wrong, never the key material.
    r.problem(`GPG_PRIVATE_KEY: not a readable OpenPGP private key (${(err as Error).message})`);
    return undefined;
  }
  try {
    if (!key.isDecrypted()) key = await pgp.decryptKey({ privateKey: key, passphrase });
  } catch (err) {
    r.problem(`GPG_PASSPHRASE does not unlock GPG_PRIVATE_KEY (${(err as Error).message})`);
    return undefined;
  }
  try {
    await pgp.sign({ message: await pgp.createMessage({ binary: new Uint8Array([0]) }), signingKeys: key, detached: true });
  } catch (err) {
    r.problem(`GPG_PRIVATE_KEY cannot sign (${(err as Error).message}): it needs a signing key or subkey that has not expired`);
    return undefined;
  }
  return { signingKey: key, keyId: key.getKeyID().toHex().toUpperCase() };
}
