import { compileRules, FilterError, type AcceptFile, type InjectNote, type RuleSet } from '../filters/index.js';
import { loadAccept, type AcceptOptions } from './accept.js';
import type { ClientEnv } from './client-env.js';
import type { EnvReader } from './env.js';

/** The accept rules as the client filters with them. */
export interface ClientRules {
  accept: AcceptFile;
  privateRules: RuleSet;
  publicRules: RuleSet;
  /** What the ACCEPT_* injection had to say. */
  notes: InjectNote[];
}

/**
 * Loads and compiles the accept rules. A problem in them becomes one of the reader's problems
 * (reported with the others); the result is then undefined.
 */
export async function loadClientRules(r: EnvReader, resolved: ClientEnv, opts: AcceptOptions): Promise<ClientRules | undefined> {
  const acceptSource = resolved.accept;
  const acceptWhere = acceptSource.fromPreset ? `BROKER_SCM_TYPE=${resolved.scmType} accept template` : `ACCEPT file ${acceptSource.path}`;
  let loaded: { accept: AcceptFile; notes: InjectNote[] };
  try {
    loaded = await loadAccept(acceptSource, resolved.env, opts);
  } catch (err) {
    if (err instanceof FilterError) r.problem(`ACCEPT: ${err.message}`);
    else throw err;
    return undefined;
  }
  const privateRules = compileSide(r, loaded.accept, 'private', resolved, acceptWhere);
  const publicRules = compileSide(r, loaded.accept, 'public', resolved, acceptWhere);
  if (!privateRules || !publicRules) return undefined;
  return { accept: loaded.accept, privateRules, publicRules, notes: loaded.notes };
}

function compileSide(r: EnvReader, accept: AcceptFile, side: 'private' | 'public', resolved: ClientEnv, acceptWhere: string): RuleSet | undefined {
  try {
    return compileRules(accept[side], resolved.env, `${acceptWhere} (${side} rules)`);
  } catch (err) {
    if (err instanceof FilterError) r.problem(err.message);
    else throw err;
    return undefined;
  }
}
