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
  // Resolved on every relayed request, and a `new URL` parse was ~1 % of the client's CPU
  // (issue 23): the answer depends on the text only, and a rule set has few distinct origins.
  const known = splitCache.get(origin);
  if (known) return known;
  const split = parseOrigin(origin);
  if (splitCache.size >= SPLIT_CACHE_SIZE) splitCache.delete(splitCache.keys().next().value!);
  splitCache.set(origin, split);
  return split;
}

/** Origins already split (frozen: callers share them), oldest first; bounded for pools and live values. */
const splitCache = new Map<string, Readonly<{ base: string; authorization?: string }>>();
const SPLIT_CACHE_SIZE = 256;

function parseOrigin(origin: string): Readonly<{ base: string; authorization?: string }> {
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
  return Object.freeze({ base: url.toString().replace(/\/$/, ''), authorization });
}
