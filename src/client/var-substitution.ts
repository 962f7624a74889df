import { isOn } from '../config/env.js';
import { VariableResolver } from '../filters/index.js';
import { parseJson } from '../json.js';
import type { RelayRequest } from '../protocol/index.js';

const VAR_REF = /\$\{([^}]*)\}/g;

function substituteVars(value: string, vars: VariableResolver): string {
  // Same semantics as the real client (unset → empty, a pool gives its next value), except the broker token never leaves.
  return value.replace(VAR_REF, (_, name: string) => (name === 'BROKER_TOKEN' ? '' : (vars.get(name) ?? '')));
}

const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function getPath(obj: unknown, path: string): unknown {
  if (path.split('.').some((k) => UNSAFE_KEYS.has(k))) return undefined;
  return path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj);
}

function setPath(obj: unknown, path: string, value: unknown): void {
  const keys = path.split('.');
  const last = keys.pop()!;
  if (UNSAFE_KEYS.has(last)) return;
  const target = keys.length === 0 ? obj : getPath(obj, keys.join('.'));
  if (target && typeof target === 'object') (target as Record<string, unknown>)[last] = value;
}

/**
 * `${VAR}` substitution the platform asks for (protocol §3.3): JSON bodies listing paths in
 * `BROKER_VAR_SUB`, headers named in `x-broker-var-sub` — e.g. a webhook URL built from
 * `${BROKER_CLIENT_URL}` when Snyk creates an SCM webhook.
 */
export function applyVarSubstitution(req: RelayRequest, vars: Record<string, string | undefined>, resolver: VariableResolver = new VariableResolver(vars)): RelayRequest {
  let out = req;
  if (req.body !== undefined && req.body.length > 0 && !isOn(vars.DISABLE_BODY_VARS_SUBSTITUTION)) {
    let parsed: unknown;
    try {
      parsed = parseJson(typeof req.body === 'string' ? req.body : req.body.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    const paths = (parsed as { BROKER_VAR_SUB?: unknown } | undefined)?.BROKER_VAR_SUB;
    if (parsed && typeof parsed === 'object' && Array.isArray(paths)) {
      for (const path of paths) {
        if (typeof path !== 'string') continue;
        const value = getPath(parsed, path);
        if (typeof value === 'string') setPath(parsed, path, substituteVars(value, resolver));
      }
      delete (parsed as { BROKER_VAR_SUB?: unknown }).BROKER_VAR_SUB;
      out = { ...out, body: Buffer.from(JSON.stringify(parsed)) };
    }
  }
  const names = req.headers['x-broker-var-sub'];
  if (typeof names === 'string' && !isOn(vars.DISABLE_HEADER_VARS_SUBSTITUTION)) {
    const headers = { ...out.headers };
    for (const raw of names.split(',')) {
      const name = raw.trim().toLowerCase();
      const value = headers[name];
      if (typeof value === 'string') headers[name] = substituteVars(value, resolver);
    }
    out = { ...out, headers };
  }
  return out;
}
