import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { OriginMessage } from './origin-server.js';

export interface BenchOrigin {
  url: string;
  /** Requests per first path segment since the last clear (HA scenario: each client has its own prefix). */
  served(): Promise<Map<string, number>>;
  clearServed(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts the benchmark's origin in its own process, so its work neither slows the load
 * generator nor caps what a broker can move (rounds 1–3 ran it in the benchmark's process).
 */
export async function startBenchOrigin(): Promise<BenchOrigin> {
  const child = fork(fileURLToPath(new URL('./origin-server.js', import.meta.url)), ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = async <T extends OriginMessage['type']>(type: T) => {
    for (;;) {
      const [m] = (await once(child, 'message')) as [OriginMessage];
      if (m.type === type) return m as Extract<OriginMessage, { type: T }>;
    }
  };
  const { port } = await Promise.race([
    next('listening'),
    once(child, 'exit').then(([code]) => {
      throw new Error(`bench origin exited (code ${code}) before listening`);
    }),
  ]);
  return {
    url: `http://127.0.0.1:${port}`,
    served: async () => {
      const reply = next('served');
      child.send({ type: 'served' });
      return new Map(Object.entries((await reply).counts));
    },
    clearServed: async () => {
      const reply = next('served');
      child.send({ type: 'clear' });
      await reply;
    },
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}
