import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * Secrets known at runtime (the broker token, credentials from accept rules) are scrubbed
 * from every serialised log line, wherever they appear: in a message, a URL, an error.
 * Path-based redaction alone would miss a token embedded in a string.
 */
export class SecretScrubber {
  readonly #secrets = new Set<string>();
  #pattern: RegExp | undefined;

  add(...secrets: Array<string | undefined>): void {
    for (const s of secrets) {
      // Very short values would mangle ordinary text; nothing that short is a real secret.
      if (s && s.length >= 6 && !this.#secrets.has(s)) {
        this.#secrets.add(s);
        this.#pattern = undefined;
      }
    }
  }

  /** A secret that can no longer appear (a rotated token long replaced): keeps the pattern small. */
  remove(secret: string): void {
    if (this.#secrets.delete(secret)) this.#pattern = undefined;
  }

  scrub(text: string): string {
    if (this.#secrets.size === 0) return text;
    this.#pattern ??= new RegExp(
      [...this.#secrets]
        .sort((a, b) => b.length - a.length)
        .flatMap((s) => [s, JSON.stringify(s).slice(1, -1), encodeURIComponent(s)])
        .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('|'),
      'g',
    );
    return text.replace(this.#pattern, '[REDACTED]');
  }
}

/** Header and field names that always carry credentials. */
export const REDACTED_PATHS = [
  'token',
  'brokerToken',
  'headers.authorization',
  'headers["x-broker-token"]',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers["x-broker-token"]',
  'req.headers.cookie',
  '*.headers.authorization',
  '*.headers["x-broker-token"]',
  'password',
  '*.password',
];

export interface LoggerOptions {
  level?: string;
  name?: string;
  scrubber?: SecretScrubber;
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const scrubber = options.scrubber;
  return pino(
    {
      name: options.name ?? 'ha-broker',
      level: options.level ?? 'info',
      base: { pid: process.pid },
      redact: { paths: REDACTED_PATHS, censor: '[REDACTED]' },
      // pino reads hooks.logMethod: an explicit `hooks: undefined` would break every log call.
      ...(scrubber ? { hooks: { streamWrite: (line: string) => scrubber.scrub(line) } } : {}),
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** A logger that drops everything: for tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
