/*
 * Bearer tokens of Universal Broker clients, read as snyk-broker's server reads them. The
 * server never verifies a signature: the validation endpoint vouches for the token; the server
 * only needs the `azp` claim to tie answer uploads to the tunnel that was validated.
 * (Here, not in protocol/, while only the server reads them.)
 */

/** `authorization` starting with `bearer` (any case) → what follows its first space; undefined when it is not a bearer header or nothing follows. */
export function bearerCredentials(authorization: string | undefined): string | undefined {
  if (authorization === undefined || !authorization.toLowerCase().startsWith('bearer')) return undefined;
  const credentials = authorization.slice(authorization.indexOf(' ') + 1).trim();
  return credentials.length > 0 ? credentials : undefined;
}

const SEGMENT = /^[A-Za-z0-9_-]*$/;

/** The `azp` claim of a JWT (with or without a leading `bearer `), decoded only; '' when there is none or it is not a JWT. */
export function jwtAzp(token: string | undefined): string {
  if (!token) return '';
  const parts = token.replace(/^bearer\s+/i, '').trim().split('.');
  if (parts.length !== 3 || !parts.every((p) => SEGMENT.test(p)) || !parts[0] || !parts[1]) return '';
  try {
    JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    if (!payload || typeof payload !== 'object') return '';
    const azp = (payload as { azp?: unknown }).azp;
    return typeof azp === 'string' ? azp : '';
  } catch {
    return '';
  }
}
