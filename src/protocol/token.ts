import { createHash } from 'node:crypto';

/** sha256 of the raw token string, lowercase hex: the token's identifier on the wire. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** The masked form the real broker uses in headers and status pages: `b946-...-3797`. */
export function maskToken(token: string): string {
  if (token.length <= 8) return '***';
  return `${token.slice(0, 4)}-...-${token.slice(-4)}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}
