import type { DemoProcess } from './processes.js';
import type { TrafficStats } from './traffic.js';
import type { ReplicaWatch } from './replica-watch.js';
import type { SnykApiCounts } from './snyk-api.js';
import { startDisplay, type DemoFrame, type DisplayMode } from './display.js';

/** Where the Universal demo's parts listen (for the header lines). */
export interface UniversalLayout {
  dir: string;
  deploymentId: string;
  apiPort: number;
  dispatcherPort: number;
  serverPorts: number[];
  balancerPort: number;
  /** Platform requests per second, per connection. */
  ratePerSecond: number;
}

/** One connection of the deployment as the display shows it. */
export interface ConnectionView {
  name: string;
  type: string;
  identifier: string;
  originPort: number;
  /** The platform's requests for it (through the balancer). */
  traffic: TrafficStats;
  /** Requests its origin answered. */
  originServed: () => number;
}

export interface UniversalStatusSources {
  layout: UniversalLayout;
  api: SnykApiCounts;
  connections: ConnectionView[];
  replicas: DemoProcess[];
  watch: ReplicaWatch;
  /** The dispatcher and the servers (their pids are in the JSON status). */
  infra: DemoProcess[];
}

const mask = (token: string) => `${token.slice(0, 4)}-...-${token.slice(-4)}`;

function failures(t: TrafficStats): string {
  return t.failures.size ? `  (${[...t.failures].map(([k, v]) => `${k}: ${v}`).join(', ')})` : '';
}

function headerLines(s: UniversalStatusSources): string[] {
  const l = s.layout;
  const a = s.api;
  return [
    `ha-broker demo, Universal Broker — deployment ${mask(l.deploymentId)}, ${s.replicas.length} replicas in HA mode, logs in ${l.dir}`,
    `Snyk API (demo) :${l.apiPort} (tokens ${a.tokens}, connection lists ${a.lists}, allocations ${a.allocations}, auth refreshes ${a.refreshes}, refused ${a.refused})`,
    `dispatcher :${l.dispatcherPort}   servers ${l.serverPorts.map((p, i) => `${i}:${p}`).join(' ')} behind balancer :${l.balancerPort}   platform traffic ${l.ratePerSecond} req/s per connection`,
    '',
    'connection    type    identifier      origin  tunnels      ok  failed',
    ...s.connections.map(
      (c) => `${c.name.padEnd(13)} ${c.type.padEnd(7)} ${mask(c.identifier).padEnd(15)} :${String(c.originPort).padEnd(6)} ${String(s.watch.tunnels(c.name)).padStart(7)} ${String(c.traffic.ok).padStart(7)} ${String(c.traffic.failed).padStart(7)}${failures(c.traffic)}`,
    ),
    '',
    'replica  pid      state      connection    server  tunnels  served  last second',
  ];
}

/** The two tables (connections; each replica's part of each connection) and the same as JSON. */
function statusFrame(s: UniversalStatusSources, previous: Map<string, number>, tty: boolean): DemoFrame {
  const lines = headerLines(s);
  const replicas = [];
  for (const r of s.replicas) {
    const snap = s.watch.latest.get(r.name);
    const state = snap?.state ?? r.state;
    const perConnection: Record<string, { server?: string; tunnels: number; served: number }> = {};
    s.connections.forEach((c, i) => {
      const seen = snap?.connections.get(c.name) ?? { tunnels: 0, served: 0 };
      const key = `${r.name}/${c.name}`;
      // A restarted replica counts from 0 again.
      const delta = Math.max(0, seen.served - (previous.get(key) ?? 0));
      previous.set(key, seen.served);
      const server = r.serverIds.get(c.name);
      perConnection[c.name] = { server, tunnels: seen.tunnels, served: seen.served };
      const who = i === 0 ? `${r.name.padEnd(8)} ${String(r.child?.pid ?? '-').padEnd(8)} ${state.padEnd(10)}` : ' '.repeat(28);
      lines.push(`${who} ${c.name.padEnd(13)} ${(server ?? '-').padEnd(7)} ${String(seen.tunnels).padStart(7)} ${String(seen.served).padStart(7)}  ${'#'.repeat(Math.min(delta, 30))} ${delta}`);
    });
    replicas.push({ name: r.name, pid: r.child?.pid, state, connections: perConnection });
  }
  const n = s.replicas.length;
  lines.push('', tty ? `keys: 1-${n} kill -9 that replica · r restart killed replicas · q quit (or Ctrl-C)` : '(kill a replica with: kill -9 <pid>; Ctrl-C stops the demo)');
  const json = {
    mode: 'universal',
    api: { ...s.api },
    connections: s.connections.map((c) => ({
      name: c.name,
      type: c.type,
      tunnels: s.watch.tunnels(c.name),
      ok: c.traffic.ok,
      failed: c.traffic.failed,
      failures: Object.fromEntries(c.traffic.failures),
      originServed: c.originServed(),
    })),
    replicas,
    processes: [...s.infra, ...s.replicas].map((p) => ({ name: p.name, pid: p.child?.pid, state: p.state })),
  };
  return { lines, json };
}

/** The live tables of the Universal demo, once a second (see DisplayMode). Returns the function that stops it. */
export function startUniversalStatusDisplay(s: UniversalStatusSources, mode: DisplayMode): () => void {
  const previous = new Map<string, number>();
  return startDisplay(mode, () => Promise.resolve(statusFrame(s, previous, mode === 'tty')));
}
