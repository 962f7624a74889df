import type { AcceptFile, AcceptRule } from './types.js';

const ORIGIN = 'https://${GITHUB_TOKEN}@${GITHUB_API}';

/**
 * The private rules snyk-broker adds when commit signing is on, so the platform can build a
 * signed fix PR through GitHub's Git Data API (same methods, paths and origin as Snyk's).
 */
export const COMMIT_SIGNING_RULES: readonly AcceptRule[] = Object.freeze([
  { '//': 'create tree', method: 'POST', path: '/repos/:name/:repo/git/trees', origin: ORIGIN },
  { '//': 'create tree refs', method: 'POST', path: '/repos/:name/:repo/git/trees/:ref', origin: ORIGIN },
  { '//': 'create commit', method: 'POST', path: '/repos/:name/:repo/git/commits', origin: ORIGIN },
  { '//': 'update pull request', method: 'PATCH', path: '/repos/:name/:repo/pulls/:pull_number', origin: ORIGIN },
  { '//': 'delete ref head', method: 'DELETE', path: '/repos/:name/:repo/git/refs/heads/:branch_name', origin: ORIGIN },
]);

/** The rules with the signing rules after the private ones, where snyk-broker pushes them (so the file's own rules match first). */
export function withCommitSigningRules(file: AcceptFile): AcceptFile {
  return { ...file, private: [...file.private, ...COMMIT_SIGNING_RULES.map((r) => structuredClone(r))] };
}
