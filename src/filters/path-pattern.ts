/**
 * Rule paths use path-to-regexp v1 syntax, as Snyk's accept.json files do:
 * `:name` matches one segment, `:name?` an optional one, `*` anything (including slashes).
 * Matching is case-insensitive and tolerates one trailing slash, like path-to-regexp's defaults.
 */
export function compilePathPattern(pattern: string): RegExp {
  let source = '';
  for (const t of tokensOf(pattern)) {
    if (t.kind === 'param') {
      const group = t.group ?? '[^/]+?';
      if (t.optional) {
        // An optional segment swallows its leading slash too.
        if (source.endsWith('\\/')) source = source.slice(0, -2);
        source += `(?:\\/(${group}))?`;
      } else {
        source += `(${group})`;
      }
    } else if (t.kind === 'star') source += '(.*)';
    else source += t.ch.replace(/[.+?^${}()|[\]\\/]/g, '\\$&');
  }
  if (!source.endsWith('\\/')) source += '\\/?';
  return new RegExp(`^${source}$`, 'i');
}

/**
 * Cheap conditions a path must meet for a pattern to match it, checked before the pattern's
 * regex (which, for Snyk's `:path*` rules, backtracks over the whole path). Each is necessary,
 * never sufficient: whatever the regex matches passes them, so skipping a rule that fails them
 * changes no result. Only ASCII literal text is used: the regex's case-insensitive match (no `u`
 * flag) pairs an ASCII letter with nothing but its other case, which `toLowerCase` agrees with;
 * for other characters the two can differ (`σ`/`ς`), so they constrain nothing here.
 */
export interface PathShape {
  /**
   * Per depth from the start (0: the segment after the leading slash), the lowercased literal
   * that segment must be, or undefined for a plain `:param` there. Ends at the first segment
   * that is neither (`*`, an optional or custom parameter, mixed or non-ASCII text).
   */
  readonly fixed: readonly (string | undefined)[];
  /** `fixed` is the whole pattern: the path has exactly that many segments (and maybe one trailing slash). */
  readonly closed: boolean;
  /** Lowercased literal texts past `fixed` and before `suffix` that the lowercased path contains. */
  readonly chunks: readonly string[];
  /** Lowercased literal text at the pattern's end: the path ends with it (or with it and one `/` when `slashOptional`). */
  readonly suffix: string;
  readonly slashOptional: boolean;
}

/** A request path as the shapes read it: lowercased, and split at `/` (`segments[0]` is what precedes the leading slash). */
export interface PathProbe {
  readonly lower: string;
  readonly segments: readonly string[];
  /** The last TAIL characters of `lower` without one trailing slash (undefined when shorter): see shapeTail. */
  readonly tail: string | undefined;
}

/** How many characters of a pattern's literal end key an index (see shapeTail). */
const TAIL = 4;

export function probePath(path: string): PathProbe {
  const lower = path.toLowerCase();
  const end = lower.endsWith('/') ? lower.length - 1 : lower.length;
  return { lower, segments: lower.split('/'), tail: end >= TAIL ? lower.slice(end - TAIL, end) : undefined };
}

/**
 * The last TAIL characters of the shape's literal end, which every path it admits has as its
 * `tail`: the path ends with the suffix, maybe followed by one slash that `tail` leaves out (the
 * suffix itself never ends with a slash then). Undefined when the suffix is shorter, or when the
 * pattern ends with a slash (its paths' tails vary).
 */
export function shapeTail(shape: PathShape): string | undefined {
  return shape.slashOptional && shape.suffix.length >= TAIL ? shape.suffix.slice(-TAIL) : undefined;
}

/** A parameter's `group` is its custom pattern (`:id(\\d+)`), without the parentheses. */
type Token = { kind: 'lit'; ch: string } | { kind: 'param'; plain: boolean; optional: boolean; group?: string } | { kind: 'star' };

/** The pattern as tokens: what compilePathPattern turns into a regex and pathShape reads. */
function tokensOf(pattern: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < pattern.length) {
    const ch = pattern[i];
    if (ch === ':') {
      const m = /^:([A-Za-z0-9_]+)(\([^)]*\))?(\?)?/.exec(pattern.slice(i));
      if (m) {
        tokens.push({ kind: 'param', plain: !m[2] && !m[3], optional: Boolean(m[3]), ...(m[2] ? { group: m[2].slice(1, -1) } : {}) });
        i += m[0].length;
        continue;
      }
    }
    tokens.push(ch === '*' ? { kind: 'star' } : { kind: 'lit', ch });
    i++;
  }
  return tokens;
}

const isAsciiLit = (t: Token | undefined): t is { kind: 'lit'; ch: string } => t?.kind === 'lit' && t.ch.charCodeAt(0) < 0x80;
const isSlash = (t: Token | undefined) => t?.kind === 'lit' && t.ch === '/';

export function pathShape(pattern: string): PathShape {
  const tokens = tokensOf(pattern);
  const fixed: (string | undefined)[] = [];
  let closed = false;
  // Where the part that `fixed` does not describe starts.
  let rest = 0;
  if (isSlash(tokens[0])) {
    let start = 1;
    for (;;) {
      let end = start;
      while (end < tokens.length && !isSlash(tokens[end])) end++;
      const seg = tokens.slice(start, end);
      const only = seg.length === 1 ? seg[0] : undefined;
      if (seg.every(isAsciiLit)) fixed.push(seg.map((t) => t.ch).join('').toLowerCase());
      else if (only?.kind === 'param' && only.plain) fixed.push(undefined);
      else break;
      if (end >= tokens.length) {
        closed = true;
        break;
      }
      start = end + 1;
    }
    rest = start;
  }
  let from = tokens.length;
  while (from > 0 && isAsciiLit(tokens[from - 1])) from--;
  const suffix = tokens.slice(from).map((t) => (t as { ch: string }).ch).join('').toLowerCase();
  // The literal runs between: each is in any path the pattern matches (an optional parameter
  // takes the slash before it along, so that slash is not).
  const chunks: string[] = [];
  let run = '';
  const flush = () => {
    if (run.length >= 2 && /[^/]/.test(run)) chunks.push(run.toLowerCase());
    run = '';
  };
  for (let i = rest; i < from; i++) {
    const t = tokens[i];
    if (isAsciiLit(t)) run += t.ch;
    else {
      if (t.kind === 'param' && t.optional && run.endsWith('/')) run = run.slice(0, -1);
      flush();
    }
  }
  flush();
  // compilePathPattern adds an optional trailing slash unless the pattern ends with one.
  return { fixed, closed, chunks, suffix, slashOptional: !isSlash(tokens.at(-1)) };
}

/** Whether a path could match a pattern of this shape (false: it cannot). */
export function shapeAdmits(shape: PathShape, probe: PathProbe): boolean {
  const { fixed, suffix, chunks } = shape;
  const { segments, lower } = probe;
  if (shape.closed && segments.length !== fixed.length + 1 && !(shape.slashOptional && segments.length === fixed.length + 2 && segments[fixed.length + 1] === '')) return false;
  for (let d = 0; d < fixed.length; d++) {
    const want = fixed[d];
    if (want !== undefined && segments[d + 1] !== want) return false;
  }
  for (let i = 0; i < chunks.length; i++) if (!lower.includes(chunks[i])) return false;
  if (suffix === '' || lower.endsWith(suffix)) return true;
  return shape.slashOptional && lower.endsWith('/') && lower.endsWith(suffix, lower.length - 1);
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
      // Without spaces, a dot segment of plain ASCII starts with '.': the others skip the check.
      if (raw.charCodeAt(0) === 0x2e && isDotSegment(raw)) return false;
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
