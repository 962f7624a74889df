import { ConfigError } from './errors.js';

export type Env = Record<string, string | undefined>;

/**
 * Reads typed values from an environment and collects every problem, so a user sees all
 * that is wrong in one run rather than one variable per restart.
 */
export class EnvReader {
  readonly problems: string[] = [];
  constructor(readonly env: Env) {}

  /** The first non-empty value among the names. */
  raw(...names: string[]): string | undefined {
    for (const name of names) {
      const v = this.env[name];
      if (v !== undefined && v.trim() !== '') return v.trim();
    }
    return undefined;
  }

  string(name: string, fallback: string): string;
  string(name: string): string | undefined;
  string(name: string, fallback?: string): string | undefined {
    return this.raw(name) ?? fallback;
  }

  required(name: string, hint = ''): string {
    const v = this.raw(name);
    if (v === undefined) {
      this.problems.push(`${name} is required${hint ? ` (${hint})` : ''}`);
      return '';
    }
    return v;
  }

  int(name: string, fallback: number, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}): number {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (!/^-?\d+$/.test(v)) {
      this.problems.push(`${name} must be an integer, got ${JSON.stringify(v)}`);
      return fallback;
    }
    const n = Number(v);
    if (n < min || n > max) {
      this.problems.push(`${name} must be between ${min} and ${max}, got ${n}`);
      return fallback;
    }
    return n;
  }

  port(name: string, fallback: number): number {
    return this.int(name, fallback, { min: 0, max: 65535 });
  }

  /** Snyk's convention: `true`/`yes`/`1` (any case) is on; `false`/`no`/`0` is off; anything else is an error. */
  bool(name: string, fallback: boolean): boolean {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (isOn(v)) return true;
    if (isOff(v)) return false;
    this.problems.push(`${name} must be true/yes or false/no, got ${JSON.stringify(v)}`);
    return fallback;
  }

  url(name: string, value: string | undefined, { protocols = ['http:', 'https:'] } = {}): URL | undefined {
    if (value === undefined || value === '') return undefined;
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      this.problems.push(`${name} must be a URL, got ${JSON.stringify(redactUrl(value))}`);
      return undefined;
    }
    if (!protocols.includes(parsed.protocol)) {
      this.problems.push(`${name} must use ${protocols.join(' or ')}, got ${parsed.protocol}`);
      return undefined;
    }
    return parsed;
  }

  enumOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    const lower = v.toLowerCase() as T;
    if (!allowed.includes(lower)) {
      this.problems.push(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
      return fallback;
    }
    return lower;
  }

  problem(message: string): void {
    this.problems.push(message);
  }

  /** Throws one ConfigError listing every problem found. */
  done(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
  }
}

/** Whether a boolean variable is on, by the same rule EnvReader.bool validated it with at start. */
export function isOn(value: string | undefined): boolean {
  return value !== undefined && /^(true|yes|1)$/i.test(value);
}

/** Whether a boolean variable says off (`false`/`no`/`0`, any case), by the same rule EnvReader.bool reads it with. */
export function isOff(value: string | undefined): boolean {
  return value !== undefined && /^(false|no|0)$/i.test(value);
}

/** Strips userinfo from a URL-ish string before it goes into a message. */
export function redactUrl(value: string): string {
  return value.replace(/\/\/[^/@\s]*@/, '//***@');
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
