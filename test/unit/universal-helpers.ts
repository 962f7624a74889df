// Shared by the test/unit/universal-*.test.ts files: a pino logger whose lines are kept, parsed.
import assert from 'node:assert/strict';
import { createLogger, SecretScrubber, type Logger } from '../../src/observability/logger.js';

export interface CapturedLogger {
  logger: Logger;
  scrubber: SecretScrubber;
  /** The raw lines written (JSON text, after scrubbing). */
  lines: string[];
  entries(): Array<Record<string, unknown>>;
  /** The entries whose msg equals or matches `msg`. */
  find(msg: string | RegExp): Array<Record<string, unknown>>;
  /** Fails naming the secret if any line carries it. */
  assertNoSecret(...secrets: string[]): void;
}

export function captureLogger(level = 'debug'): CapturedLogger {
  const lines: string[] = [];
  const scrubber = new SecretScrubber();
  const logger = createLogger({ level, scrubber, destination: { write: (s: string) => void lines.push(s) } });
  const entries = () => lines.flatMap((l) => l.split('\n').filter(Boolean)).map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    logger,
    scrubber,
    lines,
    entries,
    find: (msg) => entries().filter((e) => (typeof msg === 'string' ? e.msg === msg : msg.test(String(e.msg)))),
    assertNoSecret(...secrets) {
      const text = lines.join('');
      for (const s of secrets) assert.ok(!text.includes(s), `a log line carries the secret ${s.slice(0, 4)}…`);
    },
  };
}

export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

/** A promise with its resolve/reject outside (Promise.withResolvers is Node 22+). */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
