import { FAILURE_HEADER } from '../../http/server-helpers.js';
import { FAILURES, type Failure } from '../../protocol/failures.js';
import type { RelayRequest } from '../../protocol/index.js';
import type { RelayContext, WholeAnswer } from '../relay-context.js';
import { CommitPayloadError } from './git-commit.js';
import { checkTreePayload, TreePayloadError } from './git-tree.js';
import type { CommitSigner } from './commit-signer.js';

function bodyText(body: RelayRequest['body']): string | undefined {
  if (body === undefined) return undefined;
  return Buffer.isBuffer(body) ? body.toString('utf8') : body;
}

/** A refusal as snyk-broker words it: the status and a plain-text body, plus our reason header. */
function refusal(failure: Failure, message: string): WholeAnswer {
  return { head: { status: failure.status, errorType: failure.code, headers: { 'content-type': 'text/plain; charset=utf-8', [FAILURE_HEADER]: failure.reason } }, body: message };
}

/**
 * With commit signing on, the Git Data API calls that make a commit, as snyk-broker picks them
 * (a POST whose path contains `/git/trees` or `/git/commits`): a tree with a symlink is
 * refused (401, Snyk's status), a commit is rebuilt with the configured committer and signed.
 * A commit that cannot be signed is answered with an error and not sent (snyk-broker sends it
 * unsigned, and a signature-requiring branch then refuses the fix PR with no word of why).
 */
export async function signGitData(ctx: RelayContext, signer: CommitSigner, req: RelayRequest, requestId: string): Promise<RelayRequest | WholeAnswer> {
  if (req.method.toUpperCase() !== 'POST') return req;
  const path = req.url.split('?')[0];
  if (path.includes('/git/trees')) {
    try {
      checkTreePayload(bodyText(req.body));
    } catch (err) {
      if (!(err instanceof TreePayloadError)) throw err;
      ctx.log.warn({ requestId, url: req.url, err: err.message }, 'refused a git tree (commit signing is on)');
      return refusal(FAILURES.GIT_TREE_REFUSED, err.message);
    }
    return req;
  }
  if (!path.includes('/git/commits')) return req;
  const text = bodyText(req.body);
  try {
    const body = await signer.signCommitBody(text ?? '');
    ctx.log.info({ requestId, url: req.url, keyId: signer.keyId }, 'signed a commit');
    return { ...req, body };
  } catch (err) {
    const failure = err instanceof CommitPayloadError ? FAILURES.COMMIT_PAYLOAD_INVALID : FAILURES.COMMIT_SIGNING_FAILED;
    ctx.log.error({ requestId, url: req.url, err: (err as Error).message }, 'could not sign a commit; not sent');
    return refusal(failure, `Commit not signed, so not sent: ${(err as Error).message}`);
  }
}
