import { createServer } from 'node:net';

/** What `broker demo` was asked on its command line. */
export interface DemoOptions {
  /** Stop by itself after this many seconds (as on SIGTERM). */
  durationSeconds?: number;
  /** One JSON status line a second instead of the table (for scripts and tests). */
  json?: boolean;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** `stop` runs once: on SIGINT, SIGTERM, or when the duration is over. */
export function stopOnSignals(opts: DemoOptions, stop: () => Promise<void>): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  const once = () => (stopping ??= stop());
  process.on('SIGINT', () => void once());
  process.on('SIGTERM', () => void once());
  if (opts.durationSeconds !== undefined) setTimeout(() => void once(), opts.durationSeconds * 1000);
  return once;
}

/** Runs until the process exits. */
export function forever(): Promise<never> {
  return new Promise<never>(() => {
    /* runs until stopped */
  });
}
