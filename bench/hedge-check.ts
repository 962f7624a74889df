/**
 * `node build/bench/hedge-check.js`: a short, targeted check that a healthy client under the
 * bench's scenario-1 load (closed loop, 32 connections, small answers) is never taken for hung.
 * One of our servers with two of our clients of one token (so a hedge has somewhere to go), as
 * the image runs them (default probe settings); the load is the JS closed loop of bench/load.ts
 * (wrk is not needed). Prints requests/s, tunnels taken for hung and requests hedged per run.
 * Knobs: BENCH_REPEATS (default 3), BENCH_DURATION_MS (default 10000).
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { ProcessGroup } from '../test/support/processes.js';
import { freePort } from '../test/support/ports.js';
import { waitFor } from '../test/support/wait.js';
import { closedLoop } from './load.js';
import { startBenchOrigin } from './origin.js';
import { probeCounters, shippedEnv, TOKEN, type System } from './systems.js';

const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const DURATION = Number(process.env.BENCH_DURATION_MS ?? 10_000);

async function main(): Promise<void> {
  const origin = await startBenchOrigin();
  const group = new ProcessGroup();
  const shipped = shippedEnv();
  try {
    const dir = await mkdtemp(join(tmpdir(), 'bench-hedge-'));
    const serverAccept = join(dir, 'server.json');
    const clientAccept = join(dir, 'client.json');
    await writeFile(serverAccept, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [] }));
    await writeFile(clientAccept, JSON.stringify({ private: [{ method: 'any', path: '/*', origin: '${ORIGIN_URL}' }], public: [] }));
    const serverPort = await freePort();
    const server = group.broker('server', 'server', { PORT: String(serverPort), ACCEPT: serverAccept, LOG_LEVEL: 'error', ...shipped });
    await waitFor('server health', async () => {
      const res = await request(`http://127.0.0.1:${serverPort}/healthcheck`).catch(() => undefined);
      await res?.body.dump();
      return res?.statusCode === 200;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    let client;
    for (const n of [1, 2]) {
      const port = await freePort();
      client = group.broker(`client-${n}`, 'client', {
        BROKER_TOKEN: TOKEN,
        BROKER_SERVER_URL: `http://127.0.0.1:${serverPort}`,
        BROKER_CLIENT_ID: `bench-client-${n}`,
        PORT: String(port),
        ACCEPT: clientAccept,
        ORIGIN_URL: origin.url,
        PREFLIGHT_CHECKS_ENABLED: 'false',
        LOG_LEVEL: 'error',
        ...shipped,
      });
    }
    const platform = `http://127.0.0.1:${serverPort}/broker/${TOKEN}`;
    await waitFor('4 tunnels', async () => {
      const res = await request(`http://127.0.0.1:${serverPort}/connection-status/${TOKEN}`).catch(() => undefined);
      if (!res) return false;
      const body = res.statusCode === 200 ? ((await res.body.json()) as { clients: unknown[] }) : (await res.body.dump(), { clients: [] });
      return body.clients.length === 4;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    const system: System = { name: 'ours', platform, server, client, stop: () => group.stopAll() };
    const u = new URL(platform);
    for (let i = 1; i <= REPEATS; i++) {
      const before = await probeCounters(system);
      const load = await closedLoop({ origin: u.origin, path: `${u.pathname}/small` }, { concurrency: 32, durationMs: DURATION });
      const after = await probeCounters(system);
      console.log(
        JSON.stringify({
          run: i,
          durationMs: DURATION,
          rps: Math.round(load.rps),
          p99: load.p99,
          max: load.max,
          errors: load.errors,
          probeMisses: (after?.probeMisses ?? NaN) - (before?.probeMisses ?? NaN),
          hedges: (after?.hedges ?? NaN) - (before?.hedges ?? NaN),
        }),
      );
    }
  } finally {
    await group.stopAll();
    await origin.close();
  }
}

await main();
