import { injectAcceptRules, loadAcceptFile, usesGithubAppToken, withCommitSigningRules, withGithubAppAuth, withUniversalRules, type AcceptFile, type InjectNote } from '../filters/index.js';
import type { Env } from './env.js';
import type { AcceptSource } from './client-env.js';

export interface AcceptOptions {
  /** A GitHub App is configured: rules for GitHub hosts without a credential get its token. */
  githubApp?: boolean;
  /** Commit signing is on: snyk-broker's Git Data API rules are added after the private rules. */
  commitSigning?: boolean;
  /** A Universal Broker connection of this (filter) type: the rules Snyk's Universal files add to the template are added. */
  universalType?: string;
}

/**
 * Loads the accept rules from their source and applies snyk-broker's ACCEPT_* injection where
 * Snyk would, then its commit signing rules (for any source, as Snyk adds them). With a GitHub
 * App (`githubApp`), rules for GitHub hosts that carry no credential get the App's token, unless
 * the rules use it already (then they are the operator's own).
 */
export async function loadAccept(source: AcceptSource, env: Env, opts: AcceptOptions = {}): Promise<{ accept: AcceptFile; notes: InjectNote[] }> {
  let file = await loadAcceptFile(source.path);
  if (opts.universalType) file = withUniversalRules(file, opts.universalType);
  const notes: InjectNote[] = [];
  const appAuth = opts.githubApp === true && !usesGithubAppToken(file);
  if (appAuth) {
    const converted = withGithubAppAuth(file);
    file = converted.accept;
    notes.push({ level: 'info', message: `GitHub App: ${converted.changed} accept rules for GitHub hosts without a credential send the App's installation token` });
  }
  let accept = file;
  if (source.inject) {
    const injected = injectAcceptRules(file, env);
    accept = injected.accept;
    notes.push(...injected.notes);
  }
  if (opts.commitSigning) accept = withCommitSigningRules(accept);
  // Rules the injection added (large manifests) and the signing rules get the token too; git rules keep theirs in the origin.
  if (appAuth && accept !== file) accept = withGithubAppAuth(accept).accept;
  return { accept, notes };
}
