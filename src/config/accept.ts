import { injectAcceptRules, loadAcceptFile, usesGithubAppToken, withGithubAppAuth, type AcceptFile, type InjectNote } from '../filters/index.js';
import type { Env } from './env.js';
import type { AcceptSource } from './client-env.js';

/**
 * Loads the accept rules from their source and applies snyk-broker's ACCEPT_* injection where
 * Snyk would. With a GitHub App (`githubApp`), rules for GitHub hosts that carry no credential
 * get the App's token, unless the rules use it already (then they are the operator's own).
 */
export async function loadAccept(source: AcceptSource, env: Env, opts: { githubApp?: boolean } = {}): Promise<{ accept: AcceptFile; notes: InjectNote[] }> {
  let file = await loadAcceptFile(source.path);
  const notes: InjectNote[] = [];
  const appAuth = opts.githubApp === true && !usesGithubAppToken(file);
  if (appAuth) {
    const converted = withGithubAppAuth(file);
    file = converted.accept;
    notes.push({ level: 'info', message: `GitHub App: ${converted.changed} accept rules for GitHub hosts without a credential send the App's installation token` });
  }
  if (!source.inject) return { accept: file, notes };
  const injected = injectAcceptRules(file, env);
  // Rules the injection added (large manifests) get the token too; git rules keep theirs in the origin.
  return { accept: appAuth ? withGithubAppAuth(injected.accept).accept : injected.accept, notes: [...notes, ...injected.notes] };
}
