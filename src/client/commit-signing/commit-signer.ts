import type { CommitSigningConfig } from '../../config/commit-signing.js';
import { commitObjectText, commitPayloadBody, rebuildCommitPayload } from './git-commit.js';

/** Signing failed with a usable key (it expired since the start, say); the commit is not sent. */
export class CommitSigningError extends Error {
  readonly code = 'COMMIT_SIGNING_FAILED';
}

export interface CommitSigner {
  readonly keyId: string;
  /** The create-commit body rebuilt with the configured committer and signed; throws CommitPayloadError or CommitSigningError. */
  signCommitBody(body: string, now?: Date): Promise<string>;
}

/**
 * Signs commit objects with the configured key: a binary detached signature over the object's
 * exact UTF-8 bytes, as `git commit -S` makes (snyk-broker makes a text-mode one, which
 * verifies as well but treats CRLF and LF as the same).
 */
export function createCommitSigner(config: CommitSigningConfig): CommitSigner {
  const committer = { name: config.committerName, email: config.committerEmail };
  const pgp = import('openpgp');
  /** An armored detached signature over `text` (the commit object's bytes). */
  async function sign(text: string): Promise<string> {
    const { createMessage, sign: detach } = await pgp;
    try {
      // openpgp's result type names a stream package it does not ship types for: checked here instead.
      const armored: unknown = await detach({ message: await createMessage({ binary: Buffer.from(text, 'utf8') }), signingKeys: config.signingKey, detached: true, format: 'armored' });
      if (typeof armored !== 'string') throw new Error('openpgp returned no armored signature');
      // GitHub stores the signature as the object's gpgsig header: LF line ends, no trailing newline.
      return armored.replace(/\r\n/g, '\n').trim();
    } catch (err) {
      throw new CommitSigningError(`signing the commit with key ${config.keyId} failed: ${(err as Error).message}`, { cause: err });
    }
  }
  return {
    keyId: config.keyId,
    async signCommitBody(body, now) {
      const commit = rebuildCommitPayload(body, committer, now);
      commit.signature = await sign(commitObjectText(commit));
      return commitPayloadBody(commit);
    },
  };
}
