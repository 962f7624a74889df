import { request } from 'undici';
import type { DemoProcess } from './processes.js';

/** What one Universal client replica does for one connection, from its /metrics. */
export interface ReplicaConnection {
  /** Tunnels open (primary and secondary). */
  tunnels: number;
  /** Requests from the platform relayed to the origin. */
  served: number;
}

/** The latest look at a replica: undefined per connection until its /metrics answered. */
export interface ReplicaSnapshot {
  /** serving (a tunnel open), starting (no answer or no tunnel yet), killed, exited. */
  state: string;
  connections: Map<string, ReplicaConnection>;
}

type Series = Array<{ name: string; labels: Record<string, string>; value: number }>;

/** The samples of a Prometheus text exposition (no escapes beyond \" in label values: ours are plain). */
export function parseMetrics(text: string): Series {
  const out: Series = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2]!;
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** Per connection label: tunnels open and inbound requests relayed. */
export function perConnection(series: Series): Map<string, ReplicaConnection> {
  const out = new Map<string, ReplicaConnection>();
  const entry = (c: string) => out.get(c) ?? out.set(c, { tunnels: 0, served: 0 }).get(c)!;
  for (const s of series) {
    const c = s.labels.connection;
    if (!c) continue;
    if (s.name === 'broker_client_tunnels_open') entry(c).tunnels += s.value;
    else if (s.name === 'broker_client_requests_total' && s.labels.direction === 'inbound') entry(c).served += s.value;
  }
  return out;
}

async function look(p: DemoProcess, port: number): Promise<ReplicaSnapshot> {
  if (p.state !== 'running') return { state: p.state, connections: new Map() };
  try {
    const res = await request(`http://127.0.0.1:${port}/metrics`, { headersTimeout: 900, bodyTimeout: 900 });
    if (res.statusCode !== 200) {
      await res.body.dump();
      return { state: 'starting', connections: new Map() };
    }
    const connections = perConnection(parseMetrics(await res.body.text()));
    const open = [...connections.values()].some((c) => c.tunnels > 0);
    return { state: open ? 'serving' : 'starting', connections };
  } catch {
    return { state: 'starting', connections: new Map() };
  }
}

export interface ReplicaWatch {
  /** Replica name → its latest snapshot. */
  readonly latest: Map<string, ReplicaSnapshot>;
  /** Tunnels open for a connection over every replica, as last seen. */
  tunnels(connection: string): number;
  stop(): void;
}

/** Reads every replica's /metrics once a second. */
export function watchReplicas(replicas: DemoProcess[], ports: number[]): ReplicaWatch {
  const latest = new Map<string, ReplicaSnapshot>();
  const poll = async () => {
    const looks = await Promise.all(replicas.map((r, i) => look(r, ports[i])));
    replicas.forEach((r, i) => latest.set(r.name, looks[i]));
  };
  void poll();
  const timer = setInterval(() => void poll(), 1000);
  return {
    latest,
    tunnels: (connection) => [...latest.values()].reduce((n, s) => n + (s.connections.get(connection)?.tunnels ?? 0), 0),
    stop: () => clearInterval(timer),
  };
}
