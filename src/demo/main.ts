import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import { startBalancer } from './balancer.js';
import { startDemoOrigin } from './origin.js';
import { createDemoProcess, killDemoProcess, startDemoProcess, stopDemoProcesses } from './processes.js';
import { clientEnv, dispatcherEnv, serverEnv, writeDemoAcceptFiles } from './environments.js';
import { startPlatformTraffic } from './traffic.js';
import { startStatusDisplay } from './status.js';
import { captureKeys, releaseKeys } from './keys.js';
import { announce, displayMode } from './display.js';
import { forever, freePort, stopOnSignals, type DemoOptions } from './lifecycle.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));
const TOKEN = '7f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f';
const SERVERS = 3;
const CLIENTS = 5;
const RATE_PER_SECOND = 40;

/**
 * `npm start`: a complete local HA system on the embedded defaults — a dispatcher (memory
 * store), 3 broker servers behind a round-robin balancer (the stand-in for a Kubernetes
 * Service), 5 clients of one token (4 get allocated, the 5th waits), a demo origin — with
 * steady platform traffic and a live table of who serves what. Keys: 1-5 kill -9 that
 * client, r restarts killed clients, q quits.
 */
export async function runDemo(opts: DemoOptions = {}): Promise<void> {
  const mode = displayMode(opts.json ?? false);
  const dir = await mkdtemp(join(tmpdir(), 'ha-broker-demo-'));
  const origin = await startDemoOrigin();
  const dispatcherPort = await freePort();
  const serverPorts = await Promise.all(Array.from({ length: SERVERS }, freePort));
  const clientPorts = await Promise.all(Array.from({ length: CLIENTS }, freePort));
  const balancer = await startBalancer(serverPorts);
  const serverUrl = `http://127.0.0.1:${balancer.port}`;
  const { serverAccept, clientAccept } = await writeDemoAcceptFiles(dir, origin.port);

  const dispatcher = createDemoProcess(dir, 'dispatcher', dispatcherEnv(dispatcherPort));
  startDemoProcess(CLI, dispatcher, 'dispatcher');
  const servers = serverPorts.map((port, i) => createDemoProcess(dir, `server-${i}`, serverEnv(i, port, { dispatcherPort, accept: serverAccept })));
  for (const s of servers) startDemoProcess(CLI, s, 'server');
  const clientOpts = { token: TOKEN, serverUrl, dispatcherPort, originPort: origin.port, accept: clientAccept };
  const clients = clientPorts.map((port, i) => createDemoProcess(dir, `client-${i + 1}`, clientEnv(i + 1, port, clientOpts)));
  for (const c of clients) startDemoProcess(CLI, c, 'client');

  const readiness = new Map<string, string>();
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: 16 });
  // Traffic starts once a client serves: requests before any tunnel exists would only show 404s.
  const traffic = startPlatformTraffic({ serverUrl, path: (n) => `/broker/${TOKEN}/demo/${n}`, agent, ratePerSecond: RATE_PER_SECOND, shouldSend: () => [...readiness.values()].includes('serving') });
  const layout = { token: TOKEN, dir, dispatcherPort, serverPorts, balancerPort: balancer.port, originPort: origin.port, ratePerSecond: RATE_PER_SECOND };
  const stopDisplay = startStatusDisplay({ layout, clients, infra: [dispatcher, ...servers], clientPorts, readiness, traffic: traffic.stats, served: origin.served }, mode);

  const stop = stopOnSignals(opts, async () => {
    stopDisplay();
    await traffic.stop();
    releaseKeys();
    announce(mode, '\nstopping the demo...\n', { event: 'stopping' });
    await stopDemoProcesses([...clients, ...servers, dispatcher]);
    await balancer.close();
    await origin.close();
    await agent.close();
    const { ok, failed } = traffic.stats;
    announce(mode, `done: ${ok} requests ok, ${failed} failed. Logs kept in ${dir}\n`, { event: 'done', ok, failed, logs: dir });
    process.exit(0);
  });
  captureKeys(CLIENTS, {
    quit: () => void stop(),
    restartKilled: () => {
      for (const c of clients) if (c.state !== 'running') startDemoProcess(CLI, c, 'client');
    },
    kill: (n) => killDemoProcess(clients[n - 1]),
  });
  await forever();
}
