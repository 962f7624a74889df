import { FilterError } from './errors.js';
import { compilePathPattern, isSafePath, pathShape, probePath, shapeAdmits, shapeTail, splitUrl, type PathProbe, type PathShape } from './path-pattern.js';
import { compileChecks, type CompiledChecks } from './valid-checks.js';
import { authorizationFor, splitOrigin } from './credentials.js';
import { VariableResolver, variablesIn, type Vars } from './variables.js';
import type { AcceptRule, FilterRequest, FilterResult } from './types.js';
import { parseJson } from '../json.js';

interface CompiledRule {
  rule: AcceptRule;
  method: string;
  path: RegExp;
  /** Cheap necessary conditions on the path, tried before `path` (path-pattern.ts). */
  shape: PathShape;
  checks: CompiledChecks;
}

/**
 * Rules bucketed by a key their pattern requires of the path: per key, the rules with that key
 * and every rule without one (`rest`), in file order; `rest` alone serves a key no rule has.
 */
interface Buckets<T> {
  by: Map<string, T>;
  rest: T;
}

/** One method's rules, by the literal first path segment and then by the literal end (shapeTail) their pattern requires. */
type MethodIndex = Buckets<Buckets<CompiledRule[]>>;

const BLOCKED_REASON = 'Request does not match any accept rule, blocking HTTP request';

function ruleTemplates(r: AcceptRule): string[] {
  return [r.origin, r.auth?.token, r.auth?.username, r.auth?.password].filter((t): t is string => typeof t === 'string');
}

function parseJsonBody(body: Buffer | string | undefined): unknown {
  if (body === undefined || body.length === 0) return undefined;
  try {
    return parseJson(typeof body === 'string' ? body : body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Buckets rules (in file order) by a key: a rule without one goes into every bucket, so each
 * bucket keeps the file order of all the rules that can match a path with its key.
 */
function bucketBy(rules: CompiledRule[], keyOf: (c: CompiledRule) => string | undefined): Buckets<CompiledRule[]> {
  const by = new Map<string, CompiledRule[]>();
  const rest: CompiledRule[] = [];
  for (const c of rules) {
    const key = keyOf(c);
    if (key === undefined) {
      rest.push(c);
      for (const bucket of by.values()) bucket.push(c);
    } else {
      let bucket = by.get(key);
      if (!bucket) by.set(key, (bucket = [...rest]));
      bucket.push(c);
    }
  }
  return { by, rest };
}

function methodIndex(rules: CompiledRule[]): MethodIndex {
  const bySegment = bucketBy(rules, (c) => c.shape.fixed[0]);
  const byTail = (list: CompiledRule[]) => bucketBy(list, (c) => shapeTail(c.shape));
  return { by: new Map([...bySegment.by].map(([k, list]) => [k, byTail(list)])), rest: byTail(bySegment.rest) };
}

/** A compiled list of accept rules: first match wins. */
export class RuleSet {
  readonly rules: readonly AcceptRule[];
  readonly #compiled: CompiledRule[];
  /** Per method, the rules that can match it (its own and `any`); other methods: `any` only. */
  readonly #byMethod = new Map<string, MethodIndex>();
  #anyMethod: MethodIndex = { by: new Map(), rest: { by: new Map(), rest: [] } };
  readonly #vars: VariableResolver;

  constructor(rules: AcceptRule[], vars: Vars = {}, where = 'accept rules') {
    this.rules = rules;
    this.#vars = new VariableResolver(vars);
    this.#compiled = rules.map((rule, i) => {
      try {
        return { rule, method: (rule.method ?? 'get').toLowerCase(), path: compilePathPattern(rule.path), shape: pathShape(rule.path), checks: compileChecks(rule.valid) };
      } catch (err) {
        throw new FilterError('ACCEPT_INVALID', `${where}[${i}]: ${(err as Error).message}`, { cause: err });
      }
    });
    // An origin that is not a URL (with any value its variables can take) would fail every request
    // it matches: refuse it now, unless an unset variable (which becomes '', as in snyk-broker) is
    // why; such a rule answers 502 naming the variable when it matches.
    rules.forEach((rule, i) => {
      if (rule.origin === undefined) return;
      for (const origin of this.#vars.variants(rule.origin)) {
        try {
          splitOrigin(origin);
        } catch {
          if (this.#vars.unsetIn([rule.origin]).length > 0) continue;
          const shown = variablesIn(rule.origin).length ? `${JSON.stringify(rule.origin)} (with its variables filled in)` : JSON.stringify(rule.origin);
          throw new FilterError('ACCEPT_INVALID', `${where}[${i}].origin ${shown} is not a URL`);
        }
      }
    });
  }

  /** Each variable the rules use (origin or auth) that is unset, with how many rules use it. */
  unsetVariables(): { name: string; rules: number }[] {
    const counts = new Map<string, number>();
    for (const r of this.rules) {
      for (const name of this.#vars.unsetIn(ruleTemplates(r))) counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    return [...counts].map(([name, rules]) => ({ name, rules }));
  }

  /** Every credential value the rules can inject, for log scrubbing. */
  secrets(): string[] {
    const names = this.rules.flatMap((r) => [r.origin, r.auth?.token, r.auth?.password].filter((t): t is string => typeof t === 'string').flatMap(variablesIn));
    return [...new Set(names)].flatMap((n) => this.#vars.allValues(n)).concat(this.#basicSecrets());
  }

  /** The base64 of every basic credential the rules can send: it reveals the password as well. */
  #basicSecrets(): string[] {
    const texts: string[] = [];
    for (const r of this.rules) {
      for (const origin of r.origin === undefined ? [] : this.#vars.variants(r.origin)) {
        try {
          const a = splitOrigin(origin).authorization;
          if (a?.startsWith('Basic ')) texts.push(Buffer.from(a.slice(6), 'base64').toString('utf8'));
        } catch {
          // not a URL: refused when the rules were compiled
        }
      }
      if (r.auth?.scheme?.toLowerCase() === 'basic') {
        texts.push(...this.#vars.variants(`${r.auth.username ?? ''}:${r.auth.password ?? ''}`));
        if (r.auth.token !== undefined) texts.push(...this.#vars.variants(r.auth.token));
      }
    }
    return texts.filter((t) => t.length > 1).map((t) => Buffer.from(t).toString('base64'));
  }

  /**
   * The rules whose method and path fit, in file order, tried one at a time: a match stops the
   * walk (first match wins). Rules of other methods, and rules naming another first segment, are
   * never looked at; the others' regex runs only when their shape admits the path. The index only
   * leaves out rules that cannot match, so the result is a linear scan's
   * (test/unit/filters-index.test.ts compares the two on Snyk's templates).
   */
  *#candidates(method: string, path: string): Generator<CompiledRule> {
    const probe = probePath(path);
    for (const c of this.#forRequest(method.toLowerCase(), probe)) if (shapeAdmits(c.shape, probe) && c.path.test(path)) yield c;
  }

  #forRequest(m: string, probe: PathProbe): readonly CompiledRule[] {
    if (this.#byMethod.size === 0 && this.#compiled.length > 0) this.#index();
    const index = this.#byMethod.get(m) ?? this.#anyMethod;
    // segments[0] is what precedes the first '/': empty for every path a keyed rule can match.
    const first = probe.segments[0] === '' ? probe.segments[1] : undefined;
    const byTail = (first === undefined ? undefined : index.by.get(first)) ?? index.rest;
    return (probe.tail === undefined ? undefined : byTail.by.get(probe.tail)) ?? byTail.rest;
  }

  /** Built on first use: a rule set that is compiled only to be checked never pays for it. */
  #index(): void {
    this.#anyMethod = methodIndex(this.#compiled.filter((c) => c.method === 'any'));
    for (const m of new Set(this.#compiled.map((c) => c.method))) {
      if (m !== 'any') this.#byMethod.set(m, methodIndex(this.#compiled.filter((c) => c.method === m || c.method === 'any')));
    }
    if (this.#byMethod.size === 0) this.#byMethod.set('any', this.#anyMethod);
  }

  /** Whether matching this request may need its body (so callers buffer it only then). */
  needsBody(method: string, url: string): boolean {
    // Conservative: any method+path candidate with body checks may be the one that decides.
    for (const c of this.#candidates(method, splitUrl(url).path)) if (c.checks.needsBody) return true;
    return false;
  }

  /** The first rule that lets `req` through, its origin and credential resolved; `live` values win over the environment's. */
  match(req: FilterRequest, live?: Vars): FilterResult {
    const found = this.find(req);
    return 'rule' in found ? this.resolve(found.rule, req.url, live) : found;
  }

  /**
   * The first rule that lets `req` through, nothing resolved yet (no `_POOL` value taken): for a
   * caller that must wait for a live value before `resolve`, so a pool moves once per request.
   */
  find(req: FilterRequest): { rule: AcceptRule } | Extract<FilterResult, { allowed: false }> {
    if (!isSafePath(req.url)) return { allowed: false, reason: 'Request path is not normalized (path traversal), blocking HTTP request' };
    const { path, query } = splitUrl(req.url);
    let params: URLSearchParams | undefined;
    const queryParams = () => (params ??= new URLSearchParams(query));
    let parsed: { value: unknown } | undefined;
    const body = () => (parsed ??= { value: parseJsonBody(req.body) }).value;
    const input = { query: queryParams, headers: req.headers, body };
    // #candidates' walk, inline: no generator object per request.
    const probe = probePath(path);
    for (const c of this.#forRequest(req.method.toLowerCase(), probe)) {
      if (shapeAdmits(c.shape, probe) && c.path.test(path) && c.checks.passes(input)) return { rule: c.rule };
    }
    return { allowed: false, reason: BLOCKED_REASON };
  }

  /** Whether the rule reads any of these variables (origin or auth). */
  static uses(rule: AcceptRule, names: ReadonlySet<string>): boolean {
    return ruleTemplates(rule).some((t) => variablesIn(t).some((n) => names.has(n)));
  }

  /** A found rule's origin and credential for `url`, with one view of the variables (`live` values win). */
  resolve(rule: AcceptRule, url: string, live?: Vars): FilterResult {
    // One view per request: a pooled credential takes one value for the whole request.
    const vars = this.#vars.forRequest(live);
    if (rule.origin === undefined) return { allowed: true, rule, variables: vars };
    let split: ReturnType<typeof splitOrigin>;
    try {
      split = splitOrigin(vars.substitute(rule.origin));
    } catch {
      // Only reachable through unset variables (other bad origins are refused at load).
      return { allowed: true, rule, variables: vars, unsetOriginVariables: this.#vars.unsetIn([rule.origin]) };
    }
    const { base, authorization: fromOrigin } = split;
    const auth = rule.auth
      ? authorizationFor({
          ...rule.auth,
          token: rule.auth.token === undefined ? undefined : vars.substitute(rule.auth.token),
          username: rule.auth.username === undefined ? undefined : vars.substitute(rule.auth.username),
          password: rule.auth.password === undefined ? undefined : vars.substitute(rule.auth.password),
        })
      : undefined;
    // A fragment is never sent to an origin; keeping it would only carry text past the path checks.
    return { allowed: true, rule, targetUrl: base + url.split('#', 1)[0], authorization: auth ?? fromOrigin, variables: vars };
  }
}

export function compileRules(rules: AcceptRule[], vars: Vars, where?: string): RuleSet {
  return new RuleSet(rules, vars, where);
}
