import { fork } from 'node:child_process';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createBenchOriginServer, type OriginMessage } from './origin-server.js';

export interface BenchOrigin {
  url: string;
  /** Requests per first path segment since the last clear (HA scenario: each client has its own prefix). */
  served(): Promise<Map<string, number>>;
  clearServed(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts the benchmark's origin in its own process (default), or in this one with
 * `inProcess` (how rounds 1–3 measured: the origin then shared the load generator's event loop).
 */
export async function startBenchOrigin({ inProcess = false } = {}): Promise<BenchOrigin> {
  if (inProcess) {
    const served = new Map<string, number>();
    const server = createBenchOriginServer(served);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      served: async () => new Map(served),
      clearServed: async () => served.clear(),
      close: () => new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
    };
  }
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
