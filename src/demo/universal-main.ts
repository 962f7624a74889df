import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import { startBalancer } from './balancer.js';
import { startDemoOrigin } from './origin.js';
import { createDemoProcess, killDemoProcess, startDemoProcess, stopDemoProcesses } from './processes.js';
import { demoDeployment, dispatcherEnv, serverEnv, universalReplicaEnv, writeDemoAcceptFiles } from './environments.js';
import { startDemoSnykApi } from './snyk-api.js';
import { startPlatformTraffic } from './traffic.js';
import { watchReplicas } from './replica-watch.js';
import { watchRoutable } from './routable.js';
import { startUniversalStatusDisplay } from './universal-status.js';
import { captureKeys, releaseKeys } from './keys.js';
import { announce, displayMode } from './display.js';
import { forever, freePort, stopOnSignals, type DemoOptions } from './lifecycle.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));
const SERVERS = 3;
const REPLICAS = 3;
const RATE_PER_SECOND = 20;
/** Our dispatcher's allocation prefix (its DISPATCHER_URL_PREFIX default); Snyk's API is reached under /hidden/brokers. */
const DISPATCHER_PREFIX = '/hidden/broker';

/**
 * `broker demo --universal`: the same dispatcher, 3 servers and balancer as `npm start`, a demo
 * Snyk API serving a deployment of two connections (github and gitlab, each with its own demo
 * origin), and 3 Universal Broker client replicas in HA mode serving both; platform traffic to
 * each connection and a live table of each connection's tunnels and requests and which replica
 * served them. Keys: 1-3 kill -9 that replica, r restarts killed replicas, q quits.
 */
export async function runUniversalDemo(opts: DemoOptions = {}): Promise<void> {
  const mode = displayMode(opts.json ?? false);
  const dir = await mkdtemp(join(tmpdir(), 'ha-broker-demo-universal-'));
  const github = await startDemoOrigin();
  const gitlab = await startDemoOrigin();
  const dispatcherPort = await freePort();
  const serverPorts = await Promise.all(Array.from({ length: SERVERS }, freePort));
  const replicaPorts = await Promise.all(Array.from({ length: REPLICAS }, freePort));
  const balancer = await startBalancer(serverPorts);
  const serverUrl = `http://127.0.0.1:${balancer.port}`;
  const { serverAccept } = await writeDemoAcceptFiles(dir, github.port);
  const deployment = demoDeployment({ githubPort: github.port, gitlabPort: gitlab.port });
  const connections = deployment.connections.map((c) => ({ ...c, identifier: randomUUID() }));
  const api = await startDemoSnykApi({ connections, dispatcherUrl: `http://127.0.0.1:${dispatcherPort}`, dispatcherPrefix: DISPATCHER_PREFIX });

  const dispatcher = createDemoProcess(dir, 'dispatcher', dispatcherEnv(dispatcherPort));
  startDemoProcess(CLI, dispatcher, 'dispatcher');
  const servers = serverPorts.map((port, i) => createDemoProcess(dir, `server-${i}`, serverEnv(i, port, { dispatcherPort, accept: serverAccept })));
  for (const s of servers) startDemoProcess(CLI, s, 'server');
  const replicaOpts = { api, serverUrl, credentials: deployment.credentials };
  const replicas = replicaPorts.map((port, i) => createDemoProcess(dir, `ub-${i + 1}`, universalReplicaEnv(i + 1, port, replicaOpts)));
  for (const r of replicas) startDemoProcess(CLI, r, 'client');

  const watch = watchReplicas(replicas, replicaPorts);
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: 16 });
  const origins = [github, gitlab];
  // A connection's traffic waits until every server can serve it, and pauses while none of its tunnels is open.
  const routes = connections.map((c) => watchRoutable(serverPorts, `/broker/${c.identifier}${c.path}`));
  const views = connections.map((c, i) => ({
    name: c.name,
    type: c.type,
    identifier: c.identifier,
    originPort: origins[i].port,
    originServed: () => [...origins[i].served.values()].reduce((a, b) => a + b, 0),
    traffic: startPlatformTraffic({ serverUrl, path: () => `/broker/${c.identifier}${c.path}`, agent, ratePerSecond: RATE_PER_SECOND, shouldSend: () => routes[i].routable() && watch.tunnels(c.name) > 0 }),
  }));
  const layout = { dir, deploymentId: api.deploymentId, apiPort: Number(new URL(api.url).port), dispatcherPort, serverPorts, balancerPort: balancer.port, ratePerSecond: RATE_PER_SECOND };
  const stopDisplay = startUniversalStatusDisplay({ layout, api: api.counts, connections: views.map((v) => ({ ...v, traffic: v.traffic.stats })), replicas, watch, infra: [dispatcher, ...servers] }, mode);

  const stop = stopOnSignals(opts, async () => {
    stopDisplay();
    await Promise.all(views.map((v) => v.traffic.stop()));
    watch.stop();
    for (const r of routes) r.stop();
    releaseKeys();
    announce(mode, '\nstopping the demo...\n', { event: 'stopping' });
    // The replicas first: they release their allocations through Snyk's API to the dispatcher.
    await stopDemoProcesses(replicas);
    await stopDemoProcesses([...servers, dispatcher]);
    await Promise.all([api.close(), balancer.close(), github.close(), gitlab.close(), agent.close()]);
    const summary = views.map((v) => ({ name: v.name, ok: v.traffic.stats.ok, failed: v.traffic.stats.failed }));
    announce(mode, `done: ${summary.map((s) => `${s.name} ${s.ok} requests ok, ${s.failed} failed`).join('; ')}. Logs kept in ${dir}\n`, { event: 'done', connections: summary, logs: dir });
    process.exit(0);
  });
  captureKeys(REPLICAS, {
    quit: () => void stop(),
    restartKilled: () => {
      for (const r of replicas) if (r.state !== 'running') startDemoProcess(CLI, r, 'client');
    },
    kill: (n) => killDemoProcess(replicas[n - 1]),
  });
  await forever();
}
