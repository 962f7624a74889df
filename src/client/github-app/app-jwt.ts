import { sign, type KeyObject } from 'node:crypto';

/** GitHub accepts an App JWT for at most 10 minutes. */
export const APP_JWT_TTL_S = 600;
/** Issued this far in the past, as GitHub advises, against clock drift. */
const BACKDATE_S = 60;

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

/** An App JWT: RS256 over {iat: now−60 s, exp: now+600 s, iss: the App ID}, with its expiry (ms). */
export function mintAppJwt(appId: string, key: KeyObject, nowMs: number): { jwt: string; expiresAt: number } {
  const now = Math.floor(nowMs / 1000);
  const header = base64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }));
  // GitHub wants `iss` as the App ID; Snyk's plugin sends it as the string it read.
  const payload = base64url(JSON.stringify({ iat: now - BACKDATE_S, exp: now + APP_JWT_TTL_S, iss: appId }));
  const signature = sign('sha256', Buffer.from(`${header}.${payload}`), key);
  return { jwt: `${header}.${payload}.${base64url(signature)}`, expiresAt: (now + APP_JWT_TTL_S) * 1000 };
}
