/**
 * Rule paths use path-to-regexp v1 syntax, as Snyk's accept.json files do:
 * `:name` matches one segment, `:name?` an optional one, `*` anything (including slashes).
 * Matching is case-insensitive and tolerates one trailing slash, like path-to-regexp's defaults.
 */
export function compilePathPattern(pattern: string): RegExp {
  let source = '';
  let i = 0;
  while (i < pattern.length) {
    const ch = pattern[i]!;
    if (ch === ':') {
      const m = /^:([A-Za-z0-9_]+)(\([^)]*\))?(\?)?/.exec(pattern.slice(i));
      if (m) {
        const group = m[2] ? m[2].slice(1, -1) : '[^/]+?';
        if (m[3]) {
          // An optional segment swallows its leading slash too.
          if (source.endsWith('\\/')) source = source.slice(0, -2);
          source += `(?:\\/(${group}))?`;
        } else {
          source += `(${group})`;
        }
        i += m[0].length;
        continue;
      }
    }
    if (ch === '*') {
      source += '(.*)';
      i++;
      continue;
    }
    source += ch.replace(/[.+?^${}()|[\]\\/]/g, '\\$&');
    i++;
  }
  if (!source.endsWith('\\/')) source += '\\/?';
  return new RegExp(`^${source}$`, 'i');
}

/** Splits a wire url into path and query, dropping any fragment. */
export function splitUrl(url: string): { path: string; query: string } {
  const noFragment = url.split('#', 1)[0]!;
  const q = noFragment.indexOf('?');
  return q === -1 ? { path: noFragment, query: '' } : { path: noFragment.slice(0, q), query: noFragment.slice(q + 1) };
}

function decodeSafely(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/**
 * A path is safe when no segment, raw or percent-decoded (once or twice), walks up or sideways:
 * `..`, `.`, `%2e%2e`, `..%2f..`, `%252e%252e` or backslashes. Encoded slashes inside a segment
 * stay allowed (GitLab's `group%2Fproject` ids need them) as long as they do not hide a `..`.
 */
export function isSafePath(url: string): boolean {
  const { path } = splitUrl(url);
  if (!path.startsWith('/')) return false;
  if (path.includes('\\') || path.includes('\0')) return false;
  for (const raw of path.split('/').slice(1)) {
    let current: string | undefined = raw;
    for (let round = 0; round < 3 && current !== undefined; round++) {
      if (current === '.' || current === '..') return false;
      if (/[\\\0]/.test(current)) return false;
      if (current.split(/[/\\]/).some((part) => part === '..' || part === '.')) return false;
      if (!current.includes('%')) break;
      const next = decodeSafely(current);
      if (next === undefined) return false;
      current = next;
    }
  }
  return true;
}
