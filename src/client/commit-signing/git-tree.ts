/**
 * GitHub's create-a-tree payload (`POST /repos/{owner}/{repo}/git/trees`): with commit signing
 * on, a tree that would create a symlink is refused (as snyk-broker does), so a signed commit
 * can never carry a link pointing outside the repository.
 */

/** A tree payload refused; `message` is snyk-broker's text for the same refusal. */
export class TreePayloadError extends Error {
  readonly code = 'GIT_TREE_REFUSED';
}

const SYMLINK_MODE = '120000';

/** Throws TreePayloadError when the body is not a tree payload or creates a symlink. */
export function checkTreePayload(body: string | undefined): void {
  let doc: unknown;
  try {
    doc = body === undefined ? undefined : JSON.parse(body);
  } catch {
    doc = undefined;
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new TreePayloadError('Could not parse GitHub create tree payload body');
  const tree = (doc as Record<string, unknown>).tree;
  if (!Array.isArray(tree)) throw new TreePayloadError('GitHub tree payload has no tree array');
  const links = tree.filter((entry) => {
    if (!entry || typeof entry !== 'object') return false;
    const e = entry as Record<string, unknown>;
    // sha: null without content deletes the entry: removing a symlink is safe.
    const deletion = e.sha === null && e.content === undefined;
    return e.mode === SYMLINK_MODE && !deletion;
  });
  if (links.length) throw new TreePayloadError(`Symlinks are not allowed in GitHub tree payload: ${links.map((e) => String((e as Record<string, unknown>).path)).join(', ')}`);
}
