import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { ProcessGroup, type RunningProcess } from '../test/support/processes.js';
import { freePort } from '../test/support/ports.js';
import { waitFor } from '../test/support/wait.js';
import { startBalancer } from '../src/demo/balancer.js';
import { closedLoop, type LoadResult } from './load.js';
import type { BenchOrigin } from './origin.js';
import { shippedEnv, TOKEN } from './systems.js';

export interface HaResult {
  load: LoadResult;
  perClient: Record<string, number>;
  shareMaxOverMin: number;
  failedAfterKill: number;
  recoveryMs: number;
}

/** Scenario 6: dispatcher, 2 servers behind a balancer, 4 clients; kill -9 one client mid-run. */
export async function haScenario(origin: BenchOrigin, durationMs: number): Promise<HaResult> {
  const group = new ProcessGroup();
  // As the image runs it (the Dockerfile's runtime settings), like ours in the other scenarios.
  const shipped = shippedEnv();
  try {
    const dir = await mkdtemp(join(tmpdir(), 'bench-ha-'));
    const serverAccept = join(dir, 'server.json');
    const clientAccept = join(dir, 'client.json');
    await writeFile(serverAccept, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [] }));
    await writeFile(clientAccept, JSON.stringify({ private: [{ method: 'any', path: '/*', origin: '${ORIGIN_URL}' }], public: [] }));
    const dispatcherPort = await freePort();
    group.broker('dispatcher', 'dispatcher', { PORT: String(dispatcherPort), LOG_LEVEL: 'error', ...shipped });
    const serverPorts = [await freePort(), await freePort()];
    serverPorts.forEach((port, i) =>
      group.broker(`server-${i}`, 'server', {
        PORT: String(port),
        BROKER_SERVER_ID: String(i),
        BROKER_SERVER_PEER_URL: `http://127.0.0.1:${port}`,
        DISPATCHER_URL: `http://127.0.0.1:${dispatcherPort}`,
        ACCEPT: serverAccept,
        LOG_LEVEL: 'error',
        ...shipped,
      }),
    );
    const balancer = await startBalancer(serverPorts);
    const clients: RunningProcess[] = [];
    for (let i = 1; i <= 4; i++) {
      const port = await freePort();
      clients.push(
        group.broker(`client-${i}`, 'client', {
          BROKER_TOKEN: TOKEN,
          BROKER_SERVER_URL: `http://127.0.0.1:${balancer.port}`,
          BROKER_CLIENT_URL: `http://127.0.0.1:${port}`,
          BROKER_HA_MODE_ENABLED: 'true',
          BROKER_DISPATCHER_BASE_URL: `http://127.0.0.1:${dispatcherPort}`,
          PORT: String(port),
          ACCEPT: clientAccept,
          ORIGIN_URL: `${origin.url}/c${i}`,
          PREFLIGHT_CHECKS_ENABLED: 'false',
          LOG_LEVEL: 'error',
          ...shipped,
        }),
      );
      await waitFor(`client ${i} ready`, async () => {
        const res = await request(`http://127.0.0.1:${port}/readyz`);
        await res.body.dump();
        return res.statusCode === 200;
      }, { timeoutMs: 60_000, intervalMs: 200 });
    }
    const platform = `http://127.0.0.1:${balancer.port}`;
    await origin.clearServed();
    const errors: number[] = [];
    let killedAt = 0;
    const killer = setTimeout(() => {
      killedAt = performance.now();
      clients[0]!.kill('SIGKILL');
    }, durationMs / 3);
    const load = await closedLoop({ origin: platform, path: `/broker/${TOKEN}/small` }, { concurrency: 32, durationMs, onError: (at) => errors.push(at) });
    clearTimeout(killer);
    await balancer.close();
    const served = await origin.served();
    const perClient = Object.fromEntries([1, 2, 3, 4].map((i) => [`c${i}`, served.get(`c${i}`) ?? 0]));
    const alive = Object.entries(perClient).filter(([k]) => k !== 'c1').map(([, v]) => v);
    const after = errors.filter((e) => e >= killedAt);
    return {
      load,
      perClient,
      shareMaxOverMin: Math.max(...alive) / Math.max(1, Math.min(...alive)),
      failedAfterKill: after.length,
      recoveryMs: after.length ? after[after.length - 1]! - killedAt : 0,
    };
  } finally {
    await group.stopAll();
  }
}
