import type { ClientEnv } from './client-env.js';
import type { RuleSet } from '../filters/index.js';

/** One thing the client says once at start. */
export interface StartNote {
  level: 'info' | 'warn';
  message: string;
  fields?: Record<string, unknown>;
}

/** What to say about the environment the client resolved: the preset, the .env file, dropped defaults. */
export function clientEnvNotes(resolved: ClientEnv): StartNote[] {
  const notes: StartNote[] = [];
  if (resolved.scmType) notes.push({ level: 'info', message: `SCM preset ${resolved.scmType}: Snyk's accept template and .env defaults`, fields: { scmType: resolved.scmType, accept: resolved.accept.path } });
  if ((resolved.scmType === 'github-server-app' || resolved.scmType === 'github-cloud-app') && !resolved.env.GITHUB_APP_ID) {
    notes.push({ level: 'warn', message: `${resolved.scmType} without GITHUB_APP_ID, GITHUB_APP_CLIENT_ID, GITHUB_APP_INSTALLATION_ID, GITHUB_APP_PRIVATE_PEM_PATH and GITHUB_API: no installation token is minted, so requests go to GitHub without a credential unless the accept rules carry one` });
  }
  if (resolved.dotenvPath) notes.push({ level: 'info', message: 'read variables from .env (the environment wins)', fields: { path: resolved.dotenvPath } });
  for (const d of resolved.droppedDefaults) {
    notes.push({ level: 'warn', message: `preset default ${d.name} left unset: it refers to ${d.missing.map((m) => '$' + m).join(', ')}, which ${d.missing.length === 1 ? 'is' : 'are'} not set` });
  }
  return notes;
}

/** The warning about unset variables the rules use (none when every one is set). */
export function unsetVariablesNotes(ruleSets: RuleSet[], provided: ReadonlySet<string> = new Set()): StartNote[] {
  const unset = new Map<string, number>();
  for (const set of ruleSets) for (const u of set.unsetVariables()) if (!provided.has(u.name)) unset.set(u.name, (unset.get(u.name) ?? 0) + u.rules);
  if (unset.size === 0) return [];
  const list = [...unset].map(([name, rules]) => `${name} (${rules} rule${rules === 1 ? '' : 's'})`).join(', ');
  return [
    {
      level: 'warn',
      message: `accept rules use unset variables, which become empty as in snyk-broker: ${list}; a request matching a rule whose origin is left empty is answered 502`,
      fields: { unsetVariables: Object.fromEntries(unset) },
    },
  ];
}
