/** What the demo's keys do. */
export interface DemoKeys {
  quit(): void;
  restartKilled(): void;
  /** Keys 1..clients: kill that client (1-based). */
  kill(client: number): void;
}

/** Reads single keys from a terminal (nothing when stdin is not one): 1-n, r, q or Ctrl-C. */
export function captureKeys(clients: number, keys: DemoKeys): void {
  if (!process.stdin.isTTY) return;
  process.stdin.setRawMode(true);
  process.stdin.resume();
  process.stdin.on('data', (key: Buffer) => {
    const k = key.toString();
    if (k === 'q' || k === '\u0003') return keys.quit();
    if (k === 'r') return keys.restartKilled();
    const n = Number(k);
    if (n >= 1 && n <= clients) keys.kill(n);
  });
}

/** Gives the terminal back. */
export function releaseKeys(): void {
  if (process.stdin.isTTY) process.stdin.setRawMode(false);
  process.stdin.pause();
}
