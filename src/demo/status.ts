import { request } from 'undici';
import type { DemoProcess } from './processes.js';
import type { TrafficStats } from './traffic.js';
import { startDisplay, type DemoFrame, type DisplayMode } from './display.js';

/** Where the demo's parts listen (for the header lines). */
export interface DemoLayout {
  token: string;
  dir: string;
  dispatcherPort: number;
  serverPorts: number[];
  balancerPort: number;
  originPort: number;
  ratePerSecond: number;
}

export interface DemoStatusSources {
  layout: DemoLayout;
  clients: DemoProcess[];
  /** The dispatcher and the servers (their pids are in the JSON status). */
  infra: DemoProcess[];
  clientPorts: number[];
  /** Client name → serving/waiting/starting/killed/exited, kept up to date by the display. */
  readiness: Map<string, string>;
  traffic: TrafficStats;
  /** Requests the origin served per client prefix (`c1`...). */
  served: Map<string, number>;
}

async function probe(c: DemoProcess, port: number, readiness: Map<string, string>): Promise<void> {
  if (c.state !== 'running') {
    readiness.set(c.name, c.state);
    return;
  }
  try {
    const res = await request(`http://127.0.0.1:${port}/readyz`, { headersTimeout: 900, bodyTimeout: 900 });
    await res.body.dump();
    readiness.set(c.name, res.statusCode === 200 ? 'serving' : 'waiting');
  } catch {
    readiness.set(c.name, 'starting');
  }
}

function headerLines({ layout: l, traffic: t }: DemoStatusSources): string[] {
  return [
    `ha-broker demo — token ${l.token.slice(0, 4)}-...-${l.token.slice(-4)}, logs in ${l.dir}`,
    `dispatcher :${l.dispatcherPort}   servers ${l.serverPorts.map((p, i) => `${i}:${p}`).join(' ')} behind balancer :${l.balancerPort}   origin :${l.originPort}`,
    `platform traffic ${l.ratePerSecond} req/s   ok ${t.ok}   failed ${t.failed}${t.failures.size ? `   (${[...t.failures].map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}`,
    '',
    'client     pid      server  state      served  last second',
  ];
}

/** The table of who serves what, and the same as JSON; the readiness map is updated on the way. */
function statusFrame(s: DemoStatusSources, previous: Map<string, number>, tty: boolean): DemoFrame {
  const lines = headerLines(s);
  const clients = [];
  for (const c of s.clients) {
    const key = `c${c.name.split('-')[1]}`;
    const served = s.served.get(key) ?? 0;
    const delta = served - (previous.get(key) ?? 0);
    previous.set(key, served);
    const state = s.readiness.get(c.name) ?? '?';
    clients.push({ name: c.name, pid: c.child?.pid, server: c.serverId, state, served });
    lines.push(`${c.name.padEnd(10)} ${String(c.child?.pid ?? '-').padEnd(8)} ${(c.serverId ?? '-').padEnd(7)} ${state.padEnd(10)} ${String(served).padStart(6)}  ${'#'.repeat(Math.min(delta, 40))} ${delta}`);
  }
  lines.push('', tty ? 'keys: 1-5 kill -9 that client · r restart killed clients · q quit (or Ctrl-C)' : `(kill a client with: kill -9 <pid>; Ctrl-C stops the demo)`);
  const t = s.traffic;
  const json = {
    mode: 'classic',
    traffic: { ok: t.ok, failed: t.failed, failures: Object.fromEntries(t.failures) },
    clients,
    processes: [...s.infra, ...s.clients].map((p) => ({ name: p.name, pid: p.child?.pid, state: p.state })),
  };
  return { lines, json };
}

/** The live table of who serves what, once a second (see DisplayMode). Returns the function that stops it. */
export function startStatusDisplay(s: DemoStatusSources, mode: DisplayMode): () => void {
  const previous = new Map<string, number>();
  return startDisplay(mode, async () => {
    await Promise.all(s.clients.map((c, i) => probe(c, s.clientPorts[i], s.readiness)));
    return statusFrame(s, previous, mode === 'tty');
  });
}
