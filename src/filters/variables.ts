export type Vars = Record<string, string | undefined>;

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Names of the ${VAR}s a template uses. */
export function variablesIn(template: string): string[] {
  return [...template.matchAll(VAR)].map((m) => m[1]!);
}

/**
 * Resolves ${VAR} from the environment. `VAR_POOL` (comma-separated) rotates values per call,
 * as Snyk's credential pooling does, when VAR itself is unset.
 */
export class VariableResolver {
  readonly #pools = new Map<string, { values: string[]; next: number }>();
  constructor(private readonly vars: Vars) {}

  has(name: string): boolean {
    return this.#value(name, false) !== undefined;
  }

  /** Every value a variable can take (for the log scrubber). */
  allValues(name: string): string[] {
    const direct = this.vars[name];
    if (direct !== undefined && direct !== '') return [direct];
    return this.#pool(name)?.values ?? [];
  }

  /**
   * The template with its variables filled in; `_POOL` variables take their next value unless
   * `rotate` is false. An unset variable becomes '' (snyk-broker's semantics).
   */
  substitute(template: string, rotate = true): string {
    return template.replace(VAR, (_, name: string) => this.#value(name, rotate) ?? '');
  }

  /** Every text the template can become: each value of each of its variables in turn, the others at their first value. */
  variants(template: string): string[] {
    const out = new Set([this.substitute(template, false)]);
    for (const name of new Set(variablesIn(template))) {
      for (const value of this.allValues(name)) {
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
    const direct = this.vars[name];
    if (direct !== undefined && direct !== '') return direct;
    const pool = this.#pool(name);
    if (!pool) return undefined;
    const v = pool.values[pool.next % pool.values.length]!;
    if (rotate) pool.next++;
    return v;
  }
}
