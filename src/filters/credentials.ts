import type { RuleAuth } from './types.js';

/** The Authorization header value for a rule's `auth` block (values already substituted). */
export function authorizationFor(auth: RuleAuth): string | undefined {
  switch (auth.scheme.toLowerCase()) {
    case 'bearer':
      return auth.token ? `Bearer ${auth.token}` : undefined;
    case 'token':
      return auth.token ? `token ${auth.token}` : undefined;
    case 'basic':
      // snyk-broker: a `token` is the whole "user:password" text (Azure Repos' PAT form), encoded as is.
      if (auth.token !== undefined) return `Basic ${Buffer.from(auth.token).toString('base64')}`;
      return `Basic ${Buffer.from(`${auth.username ?? ''}:${auth.password ?? ''}`).toString('base64')}`;
    case 'raw':
      return auth.token;
    default:
      return undefined;
  }
}

/**
 * An origin as accept.json writes it (`https://${TOKEN}@${HOST}`, or without a scheme) turned
 * into a clean base URL plus the credential its userinfo carried: `user:pass@` is basic auth,
 * a lone `TOKEN@` becomes `Authorization: token TOKEN` (GitHub's convention), as Snyk does.
 */
export function splitOrigin(origin: string): { base: string; authorization?: string } {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(origin) ? origin : `https://${origin}`;
  const url = new URL(withScheme);
  let authorization: string | undefined;
  if (url.username || url.password) {
    const user = decodeURIComponent(url.username);
    const pass = decodeURIComponent(url.password);
    authorization = pass ? `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` : `token ${user}`;
    url.username = '';
    url.password = '';
  }
  return { base: url.toString().replace(/\/$/, ''), authorization };
}
