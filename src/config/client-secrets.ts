import type { Env } from './env.js';
import type { RuleSet } from '../filters/index.js';
import type { ValidationCredential } from './validation-credentials.js';

/** The values that may carry a secret, as configured. */
export interface SecretSources {
  token: string;
  ruleSets: RuleSet[];
  httpProxy?: string;
  httpsProxy?: string;
  validationUrl?: string;
  validationAuth?: string;
  validationBasic?: string;
  credentials: ValidationCredential[];
  env: Env;
}

function userinfoOf(value: string | undefined): string[] {
  if (!value) return [];
  try {
    const u = new URL(value);
    return [decodeURIComponent(u.username), decodeURIComponent(u.password), u.password ? `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}` : ''].filter(Boolean);
  } catch {
    return [];
  }
}

/** Every secret value known at start, for the log scrubber. */
export function collectSecrets(s: SecretSources): string[] {
  return [
    s.token,
    ...s.ruleSets.flatMap((set) => set.secrets()),
    ...userinfoOf(s.httpProxy),
    ...userinfoOf(s.httpsProxy),
    ...userinfoOf(s.validationUrl),
    s.validationAuth ?? '',
    s.validationAuth?.replace(/^\S+\s+/, '') ?? '',
    s.validationBasic ?? '',
    s.validationBasic ? Buffer.from(s.validationBasic).toString('base64') : '',
    ...s.credentials.flatMap((c) => [c.authorization, c.raw, c.authorization.replace(/^\S+\s+/, '')]),
    // Credentials by name (GITLAB_TOKEN goes in through header substitution, not a rule's origin).
    ...Object.entries(s.env)
      .filter(([k]) => /(TOKEN|PASSWORD|_PAT|SECRET|BASIC_AUTH)(_POOL)?$/.test(k) && k !== 'BROKER_TOKEN')
      .flatMap(([k, v]) => (k.endsWith('_POOL') ? (v ?? '').split(',').map((x) => x.trim()) : [v ?? '']))
      .filter((v) => v.length >= 4),
  ].filter((s) => s.length > 0);
}
