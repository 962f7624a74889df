import { readFile } from 'node:fs/promises';
import { FilterError } from './errors.js';
import type { AcceptFile, AcceptRule } from './types.js';
import { parseJson } from '../json.js';

const METHODS = new Set(['get', 'head', 'post', 'put', 'patch', 'delete', 'options', 'any']);

function checkRule(rule: unknown, where: string): AcceptRule {
  if (!rule || typeof rule !== 'object' || Array.isArray(rule)) throw new FilterError('ACCEPT_INVALID', `${where} is not an object`);
  const r = { ...(rule as Record<string, unknown>) };
  // snyk-broker reads a missing path as '' and prefixes '/' to a path without one (Azure Repos' template has such paths).
  if (r.path === undefined) r.path = '/';
  if (typeof r.path !== 'string') throw new FilterError('ACCEPT_INVALID', `${where}.path must be a string`);
  if (!r.path.startsWith('/')) r.path = `/${r.path}`;
  if (r.method !== undefined && (typeof r.method !== 'string' || !METHODS.has(r.method.toLowerCase()))) {
    throw new FilterError('ACCEPT_INVALID', `${where}.method ${JSON.stringify(r.method)} is not an HTTP method or "any"`);
  }
  if (r.origin !== undefined && typeof r.origin !== 'string') throw new FilterError('ACCEPT_INVALID', `${where}.origin must be a string`);
  if (r.auth !== undefined) {
    const a = r.auth as Record<string, unknown> | null;
    if (!a || typeof a !== 'object' || typeof a.scheme !== 'string') throw new FilterError('ACCEPT_INVALID', `${where}.auth must be an object with a scheme`);
  }
  if (r.valid !== undefined) {
    if (!Array.isArray(r.valid)) throw new FilterError('ACCEPT_INVALID', `${where}.valid must be an array`);
    r.valid.forEach((v, i) => {
      const e = v as Record<string, unknown> | null;
      const at = `${where}.valid[${i}]`;
      if (!e || typeof e !== 'object') throw new FilterError('ACCEPT_INVALID', `${at} is not an object`);
      if (typeof e.path === 'string') {
        if (!('value' in e) && typeof e.regex !== 'string') throw new FilterError('ACCEPT_INVALID', `${at} needs "value" or "regex"`);
        if (typeof e.regex === 'string') {
          try {
            new RegExp(e.regex);
          } catch {
            throw new FilterError('ACCEPT_INVALID', `${at}.regex is not a valid regular expression`);
          }
        }
      } else if (typeof e.queryParam === 'string' || typeof e.header === 'string') {
        if (!Array.isArray(e.values) || !e.values.every((x) => typeof x === 'string')) throw new FilterError('ACCEPT_INVALID', `${at}.values must be an array of strings`);
      } else {
        throw new FilterError('ACCEPT_INVALID', `${at} needs "path", "queryParam" or "header"`);
      }
    });
  }
  return r as AcceptRule;
}

/** Validates the shape of an accept.json document; `source` names it in errors. */
export function parseAcceptJson(text: string, source: string): AcceptFile {
  let doc: unknown;
  try {
    doc = parseJson(text);
  } catch (err) {
    throw new FilterError('ACCEPT_INVALID', `${source} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new FilterError('ACCEPT_INVALID', `${source} must be a JSON object with "private" and "public" arrays`);
  const d = doc as Record<string, unknown>;
  const out: AcceptFile = { private: [], public: [] };
  for (const key of ['private', 'public'] as const) {
    const list = d[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new FilterError('ACCEPT_INVALID', `${source}: "${key}" must be an array`);
    out[key] = list.map((r, i) => checkRule(r, `${source}: ${key}[${i}]`));
  }
  return out;
}

export async function loadAcceptFile(path: string): Promise<AcceptFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new FilterError('ACCEPT_UNREADABLE', `cannot read accept file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return parseAcceptJson(text, path);
}
