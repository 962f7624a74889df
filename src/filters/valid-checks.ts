import type { ValidEntry } from './types.js';

/** Values found at a dotted path; `*` matches every element of an array or value of an object. */
export function valuesAt(doc: unknown, path: string): unknown[] {
  let current: unknown[] = [doc];
  for (const key of path.split('.')) {
    const next: unknown[] = [];
    for (const v of current) {
      if (v === null || typeof v !== 'object') continue;
      if (key === '*') next.push(...((Array.isArray(v) ? v : Object.values(v)) as unknown[]));
      else if (Object.prototype.hasOwnProperty.call(v, key)) next.push((v as Record<string, unknown>)[key]);
    }
    current = next;
    if (current.length === 0) break;
  }
  return current;
}

/** minimatch-style glob for query values: `*` and `?` stop at `/`, `**` crosses it; dotfiles allowed. */
export function globToRegExp(glob: string): RegExp {
  let src = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      src += '.*';
      i++;
    } else if (c === '*') src += '[^/]*';
    else if (c === '?') src += '[^/]';
    else src += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${src}$`);
}

export interface CompiledChecks {
  /** True when some entry needs the request body. */
  readonly needsBody: boolean;
  /** `query` and `body` are read only by rules that check them (most rules do not: no parse per request). */
  passes(input: { query: () => URLSearchParams; headers: Record<string, string | string[] | undefined>; body: () => unknown }): boolean;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  // accept.json values are usually strings; a JSON number or boolean in the body compares by text.
  return (typeof a === 'number' || typeof a === 'boolean') && typeof b === 'string' && String(a) === b;
}

/**
 * Snyk's semantics: with body or query entries present, the rule passes when some path+value
 * entry matches, or some path+regex entry matches, or all queryParam entries match; header
 * entries must all match. Unlike the real client, a path+value entry compares the value.
 */
export function compileChecks(entries: ValidEntry[] | undefined): CompiledChecks {
  const list = entries ?? [];
  const bodyValue = list.filter((e): e is { path: string; value: unknown } => 'path' in e && 'value' in e);
  const bodyRegex = list
    .filter((e): e is { path: string; regex: string } => 'path' in e && 'regex' in e)
    .map((e) => ({ path: e.path, regex: new RegExp(e.regex) }));
  const query = list
    .filter((e): e is { queryParam: string; values: string[] } => 'queryParam' in e)
    .map((e) => ({ name: e.queryParam, patterns: e.values.map(globToRegExp) }));
  const headers = list
    .filter((e): e is { header: string; values: string[] } => 'header' in e)
    .map((e) => ({ name: e.header.toLowerCase(), values: e.values }));
  const gated = bodyValue.length + bodyRegex.length + query.length > 0;
  return {
    needsBody: bodyValue.length + bodyRegex.length > 0,
    passes({ query: q, headers: h, body }) {
      for (const { name, values } of headers) {
        const got = h[name];
        const all = Array.isArray(got) ? got : got === undefined ? [] : [got];
        if (all.length === 0 || !all.every((v) => values.includes(v))) return false;
      }
      if (!gated) return true;
      if (bodyValue.length + bodyRegex.length > 0) {
        const doc = body();
        if (doc !== undefined) {
          if (bodyValue.some((e) => valuesAt(doc, e.path).some((v) => sameValue(v, e.value)))) return true;
          if (bodyRegex.some((e) => valuesAt(doc, e.path).some((v) => typeof v === 'string' && e.regex.test(v)))) return true;
        }
      }
      if (query.length > 0) {
        const params = q();
        return query.every(({ name, patterns }) => {
          const got = params.getAll(name);
          return got.length > 0 && got.every((v) => patterns.some((p) => p.test(v)));
        });
      }
      return false;
    },
  };
}
