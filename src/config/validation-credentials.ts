import type { Env } from './env.js';

/** One credential /systemcheck tries: the Authorization header and the raw value it masks. */
export interface ValidationCredential {
  authorization: string;
  /** What `maskedCredentials` shows (`abc***xyz`): the header value after its scheme, or user:password. */
  raw: string;
}

function pool(value: string | undefined): string[] | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const values = value.split(',').map((s) => s.trim()).filter(Boolean);
  return values.length > 0 ? values : undefined;
}

/**
 * A value naming a pooled variable (`token $GITHUB_TOKEN` with GITHUB_TOKEN_POOL set) stands for
 * one value per pool entry, as snyk-broker's config loader expands it; other `$VAR`s take their
 * value. Undefined when no pooled variable is named.
 */
export function expandPooled(value: string, env: Env): string[] | undefined {
  const ref = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;
  const pooled = [...value.matchAll(ref)].map((m) => m[1] ?? m[2]).find((n) => pool(env[`${n}_POOL`]));
  if (pooled === undefined) return undefined;
  return pool(env[`${pooled}_POOL`])!.map((v) => value.replace(ref, (all, a?: string, b?: string) => {
    const name = (a ?? b)!;
    return name === pooled ? v : (env[name] || all);
  }));
}

/** The part of an Authorization header after its scheme (snyk-broker's `credsFromHeader`). */
function credsFromHeader(header: string): string {
  const i = header.indexOf(' ');
  return i >= 0 ? header.slice(i + 1) : header;
}

function basic(userPass: string): ValidationCredential {
  return { authorization: `Basic ${Buffer.from(userPass).toString('base64')}`, raw: userPass };
}

/**
 * Every credential /systemcheck checks, in snyk-broker's order of precedence:
 * BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER_POOL, BROKER_CLIENT_VALIDATION_BASIC_AUTH_POOL,
 * then the single AUTHORIZATION_HEADER or BASIC_AUTH (a pool when it names a pooled variable).
 */
export function validationCredentials(env: Env): ValidationCredential[] {
  const headerPool = pool(env.BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER_POOL);
  if (headerPool) return headerPool.map((h) => ({ authorization: h, raw: credsFromHeader(h) }));
  const basicPool = pool(env.BROKER_CLIENT_VALIDATION_BASIC_AUTH_POOL);
  if (basicPool) return basicPool.map(basic);
  const header = env.BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER?.trim();
  if (header) return (expandPooled(header, env) ?? [header]).map((h) => ({ authorization: h, raw: credsFromHeader(h) }));
  const userPass = env.BROKER_CLIENT_VALIDATION_BASIC_AUTH?.trim();
  if (userPass) return (expandPooled(userPass, env) ?? [userPass]).map(basic);
  return [];
}
