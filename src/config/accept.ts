import { injectAcceptRules, loadAcceptFile, type AcceptFile, type InjectNote } from '../filters/index.js';
import type { Env } from './env.js';
import type { AcceptSource } from './client-env.js';

/** Loads the accept rules from their source and applies snyk-broker's ACCEPT_* injection where Snyk would. */
export async function loadAccept(source: AcceptSource, env: Env): Promise<{ accept: AcceptFile; notes: InjectNote[] }> {
  const file = await loadAcceptFile(source.path);
  if (!source.inject) return { accept: file, notes: [] };
  return injectAcceptRules(file, env);
}
