export type Vars = Record<string, string | undefined>;

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Names of the ${VAR}s a template uses. */
export function variablesIn(template: string): string[] {
  return [...template.matchAll(VAR)].map((m) => m[1]);
}

type Pools = Map<string, { values: string[]; next: number }>;

/** Templates split once (rule origins and credentials, every request): [text, name, text, name, ..., text]. */
const splitTemplates = new Map<string, readonly string[]>();

function templateParts(template: string): readonly string[] {
  let parts = splitTemplates.get(template);
  if (parts === undefined) {
    // split() with a capturing group keeps the names at the odd places.
    parts = template.split(new RegExp(VAR.source));
    if (splitTemplates.size >= 1024) splitTemplates.clear();
    splitTemplates.set(template, parts);
  }
  return parts;
}

/**
 * Resolves ${VAR} from the environment. `VAR_POOL` (comma-separated) rotates values round-robin,
 * as Snyk's credential pooling does; like Snyk's client, a set pool wins over VAR itself.
 */
export class VariableResolver {
  readonly #pools: Pools;
  /** Set on a per-request view: the value each pooled variable took for this request. */
  #pinned: Map<string, string> | undefined;
  /** A per-request view pins pooled values (its map made on the first one: most requests use no pool). */
  readonly #view: boolean;
  /** Set on a per-request view: values that win over the environment (a GitHub App's current token). */
  readonly #live: Vars | undefined;
  constructor(
    private readonly vars: Vars,
    shared?: { pools: Pools; live?: Vars },
  ) {
    this.#pools = shared?.pools ?? (new Map() as Pools);
    this.#view = shared !== undefined;
    this.#live = shared?.live;
  }

  /**
   * A view for one request: each pooled variable takes its next value on first use and keeps it
   * for the rest of the request (origin, auth and BROKER_VAR_SUB agree, as in Snyk's client);
   * the rotation itself is shared with this resolver.
   */
  forRequest(live?: Vars): VariableResolver {
    return new VariableResolver(this.vars, { pools: this.#pools, live });
  }

  /** The value of one variable (a pooled one takes its next value, pinned in a request view). */
  get(name: string): string | undefined {
    return this.#value(name, true);
  }

  has(name: string): boolean {
    return this.#value(name, false) !== undefined;
  }

  /** Every value a variable can take (for the log scrubber). */
  allValues(name: string): string[] {
    // A plain value beside a pool is never sent, but it is still a secret to scrub.
    const direct = this.vars[name];
    return [...(this.#pool(name)?.values ?? []), ...(direct !== undefined && direct !== '' ? [direct] : [])];
  }

  /**
   * The template with its variables filled in; `_POOL` variables take their next value unless
   * `rotate` is false. An unset variable becomes '' (snyk-broker's semantics).
   */
  substitute(template: string, rotate = true): string {
    // Literal text and variable names alternate; read per call, so values are always current.
    const parts = templateParts(template);
    if (parts.length === 1) return template;
    let out = parts[0];
    for (let i = 1; i < parts.length; i += 2) out += (this.#value(parts[i], rotate) ?? '') + parts[i + 1];
    return out;
  }

  /** Every text the template can become: each value of each of its variables in turn, the others at their first value. */
  variants(template: string): string[] {
    const out = new Set([this.substitute(template, false)]);
    for (const name of new Set(variablesIn(template))) {
      for (const value of this.#pool(name)?.values ?? this.allValues(name)) {
        out.add(template.replace(VAR, (_, n: string) => (n === name ? value : (this.#value(n, false) ?? ''))));
      }
    }
    return [...out];
  }

  /** The variables of the templates that the environment lacks (they substitute as ''). */
  unsetIn(templates: string[]): string[] {
    return [...new Set(templates.flatMap(variablesIn))].filter((n) => !this.has(n));
  }

  #pool(name: string) {
    let pool = this.#pools.get(name);
    if (!pool) {
      const raw = this.vars[`${name}_POOL`];
      if (!raw) return undefined;
      pool = { values: raw.split(',').map((s) => s.trim()).filter(Boolean), next: 0 };
      this.#pools.set(name, pool);
    }
    return pool.values.length > 0 ? pool : undefined;
  }

  #value(name: string, rotate: boolean): string | undefined {
    const live = this.#live?.[name];
    if (live !== undefined && live !== '') return live;
    const pool = this.#pool(name);
    if (!pool) {
      const direct = this.vars[name];
      return direct !== undefined && direct !== '' ? direct : undefined;
    }
    const pinned = this.#pinned?.get(name);
    if (pinned !== undefined) return pinned;
    const v = pool.values[pool.next % pool.values.length];
    if (rotate) {
      pool.next = (pool.next + 1) % pool.values.length;
      if (this.#view) (this.#pinned ??= new Map()).set(name, v);
    }
    return v;
  }
}
