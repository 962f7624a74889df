/**
 * Rule paths use path-to-regexp v1 syntax, as Snyk's accept.json files do:
 * `:name` matches one segment, `:name?` an optional one, `*` anything (including slashes).
 * Matching is case-insensitive and tolerates one trailing slash, like path-to-regexp's defaults.
 */
export function compilePathPattern(pattern: string): RegExp {
  let source = '';
  let i = 0;
  while (i < pattern.length) {
    const ch = pattern[i];
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
  const noFragment = url.split('#', 1)[0];
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

/** Decodes the valid %XX runs and leaves the rest, as a lenient origin would. */
function decodeLeniently(text: string): string {
  return text.replace(/(?:%[0-9a-f]{2})+/gi, (run) => Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8'));
}

/**
 * A segment that an origin could read as `.` or `..`: exact, with `;params` (Tomcat/Spring),
 * with trailing dots or spaces (Windows/IIS), or a Unicode lookalike that NFKC folds to dots.
 */
function isDotSegment(part: string): boolean {
  const bare = part.normalize('NFKC').split(';', 1)[0];
  return /^[. ]+$/.test(bare) && bare.includes('.');
}

/** Controls are stripped by URL parsers (tab, CR, LF) or cut paths short (NUL): never in a path. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point of this check
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Printable ASCII other than '%', '\\' and space: a segment of only these needs no decoding or folding. */
const PLAIN_SEGMENT = /^[!-$&-[\]-~]*$/;

/**
 * A path is safe when no segment, raw or percent-decoded (repeatedly), walks up or sideways:
 * `..`, `.`, `%2e%2e`, `..%2f..`, `%252e%252e`, `..;`, backslashes, control characters (the
 * WHATWG URL parser drops tab/CR/LF, so `.\n.` would become `..` on the way out) or Unicode
 * lookalikes of dots and slashes. Encoded slashes inside a segment stay allowed (GitLab's
 * `group%2Fproject` ids need them) as long as they do not hide a `..`.
 */
export function isSafePath(url: string): boolean {
  const { path } = splitUrl(url);
  if (!path.startsWith('/')) return false;
  // A raw space is never in a valid request target, and URL parsers strip a trailing one.
  if (path.includes('\\') || path.includes(' ') || CONTROL.test(path)) return false;
  for (const raw of path.split('/').slice(1)) {
    // Plain ASCII without '%' (most segments): NFKC leaves it as it is and nothing decodes, so of
    // the checks below only the dot-segment one can refuse it.
    if (PLAIN_SEGMENT.test(raw)) {
      if (isDotSegment(raw)) return false;
      continue;
    }
    // Malformed encodings (incl. overlong UTF-8 such as %c0%ae) are refused outright.
    if (decodeSafely(raw) === undefined) return false;
    let current = raw;
    for (let round = 0; ; round++) {
      if (CONTROL.test(current) || /[\\\uff3c\u2216\ufe68]/.test(current)) return false;
      const folded = current.normalize('NFKC');
      if (folded.includes('\\') || folded.split('/').some(isDotSegment)) return false;
      if (!current.includes('%')) break;
      const next: string = round === 0 ? decodeSafely(current)! : decodeLeniently(current);
      if (next === current) break;
      // Encoded more than a few times over is nothing a real client sends.
      if (round >= 4) return false;
      current = next;
    }
  }
  return true;
}
