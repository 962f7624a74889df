import type { AcceptFile, AcceptRule } from './types.js';
import { variablesIn } from './variables.js';

/** The hosts of a GitHub deployment, as Snyk's GitHub templates name them. */
const GITHUB_HOSTS = new Set(['GITHUB', 'GITHUB_API', 'GITHUB_RAW', 'GITHUB_GRAPHQL']);
/** What a GitHub App's token source provides. */
const APP_VARIABLES = new Set(['GHA_ACCESS_TOKEN', 'JWT_TOKEN']);

const APP_TOKEN = { scheme: 'bearer', token: '${GHA_ACCESS_TOKEN}' };

/** The App's own endpoints Snyk's Universal rules allow (the first with the App JWT). */
const APP_ENDPOINTS: AcceptRule[] = [
  { '//': 'List installations for the authenticated app', method: 'GET', path: '/app/installations/:installationId', origin: 'https://${GITHUB_API}', auth: { scheme: 'bearer', token: '${JWT_TOKEN}' } },
  { '//': 'List repositories accessible to the app installation', method: 'GET', path: '/installation/repositories', origin: 'https://${GITHUB_API}', auth: { ...APP_TOKEN } },
];

function needsAppToken(rule: AcceptRule): boolean {
  if (rule.auth || rule.origin === undefined) return false;
  const names = variablesIn(rule.origin);
  return names.some((n) => GITHUB_HOSTS.has(n)) && !names.some((n) => APP_VARIABLES.has(n));
}

/**
 * Classic mode with a GitHub App: Snyk's classic github-server-app template carries no credential
 * (its token plugin runs only in Universal mode), so every rule for a GitHub host that carries
 * none gets the installation token as a bearer, as Snyk's Universal rules for the type do; a
 * personal-token userinfo in an origin (`${GITHUB_TOKEN}@`) is dropped; the App's own endpoints
 * are added. Rules with a credential of their own stay as they are.
 */
export function withGithubAppAuth(file: AcceptFile): { accept: AcceptFile; changed: number } {
  let changed = 0;
  const convert = (rule: AcceptRule): AcceptRule => {
    if (!needsAppToken(rule)) return rule;
    changed++;
    return { ...rule, origin: rule.origin!.replace(/^(https?:\/\/)[^@/]*\$\{GITHUB_TOKEN\}[^@/]*@/, '$1'), auth: { ...APP_TOKEN } };
  };
  const priv = file.private.map(convert);
  for (const extra of APP_ENDPOINTS) {
    if (!priv.some((r) => r.path === extra.path && (r.method ?? 'get').toLowerCase() === 'get')) priv.push(structuredClone(extra));
  }
  return { accept: { ...file, private: priv }, changed };
}

/** Whether the rules already use the App's token somewhere (then they are the operator's own App rules, left alone). */
export function usesGithubAppToken(file: AcceptFile): boolean {
  return file.private.some((r) => [r.origin, r.auth?.token].some((t) => typeof t === 'string' && variablesIn(t).some((n) => APP_VARIABLES.has(n))));
}
