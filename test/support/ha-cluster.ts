// A whole HA system of our own processes on 127.0.0.1, for the issue-4 end-to-end proofs:
// a dispatcher, N broker servers behind ONE shared URL (a round-robin TCP balancer without
// affinity, the stand-in for a Kubernetes Service), HA clients of one token, and an origin
// that counts requests per client: client n's rules send everything to `<origin>/c<n>`, so the
// first path segment the origin sees names the client that relayed the request.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { startBalancer, type Balancer } from '../../src/demo/balancer.js';
import { hashToken } from '../../src/protocol/index.js';
import { ProcessGroup, type RunningProcess } from './processes.js';
import { freePort } from './ports.js';
import { writeAcceptFile } from './client-harness.js';
import { waitFor } from './wait.js';
import { httpStatus } from './http-status.js';
import { fileURLToPath } from 'node:url';

/** The TCP proxy process (build/test/support/tcp-proxy-main.js). */
const PROXY_SCRIPT = fileURLToPath(new URL('./tcp-proxy-main.js', import.meta.url));

/** Counts requests per first path segment (`c1`, `c2`, ...) and remembers when each was first seen. */
export interface CountingOrigin {
  readonly url: string;
  readonly served: Map<string, number>;
  readonly firstSeen: Map<string, number>;
  /** How many times each load id (the `id` of a JSON request body) arrived: more than once is a duplicate delivery. */
  readonly seenIds: Map<string, number>;
  close(): Promise<void>;
}

/** `delayMs` holds every answer that long, so requests are in flight when something fails. */
export async function startCountingOrigin(delayMs = 0): Promise<CountingOrigin> {
  const served = new Map<string, number>();
  const firstSeen = new Map<string, number>();
  const seenIds = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (!chunks.length) return;
      try {
        const id = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: unknown }).id;
        if (typeof id === 'string') seenIds.set(id, (seenIds.get(id) ?? 0) + 1);
      } catch {
        // not a load body
      }
    });
    const prefix = (req.url ?? '/').split('/')[1] ?? '';
    const answer = () => {
      // Counted when answered: a request whose client died before answering was not served by it.
      served.set(prefix, (served.get(prefix) ?? 0) + 1);
      if (!firstSeen.has(prefix)) firstSeen.set(prefix, Date.now());
      const body = JSON.stringify({ ok: true, servedBy: prefix });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (delayMs > 0 && (req.url ?? '').includes('/stream/')) {
      // A path with `/stream/`: headers at once, then the body in 10 pieces over delayMs (an
      // answer that is mid-stream when something fails cannot be retried by anyone).
      served.set(prefix, (served.get(prefix) ?? 0) + 1);
      res.writeHead(200, { 'content-type': 'text/plain' });
      let piece = 0;
      const timer = setInterval(() => {
        res.write(`piece ${piece}\n`);
        if (++piece === 10) {
          clearInterval(timer);
          res.end();
        }
      }, delayMs / 10);
      res.on('close', () => clearInterval(timer));
      return;
    }
    if (delayMs > 0) setTimeout(answer, delayMs);
    else answer();
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    served,
    firstSeen,
    seenIds,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export { httpStatus };

export function logLines(proc: RunningProcess): Array<Record<string, unknown>> {
  return proc
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}

export interface ServerNode {
  readonly id: string;
  readonly port: number;
  proc: RunningProcess;
  /** How many times it was started. */
  starts: number;
}

export interface ClientNode {
  /** 1-based; its requests reach the origin under `/c<n>`. */
  readonly n: number;
  readonly clientId: string;
  readonly port: number;
  proc: RunningProcess;
  readonly prefix: string;
}

export interface LoadFailure {
  at: number;
  reason: string;
  url: string;
}

/** Steady platform traffic through the shared URL; every failure is kept with its time and reason. */
export interface Load {
  readonly sent: number;
  readonly ok: number;
  readonly failures: readonly LoadFailure[];
  /** Stops sending and waits for the requests in flight. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  servers?: number;
  serverEnv?: Record<string, string>;
  clientEnv?: Record<string, string>;
  dispatcherEnv?: Record<string, string>;
  /** Origin answer delay (default 0). */
  originDelayMs?: number;
  /** Clients also relay POST /* to the origin (the fault suite's mixed load). */
  allowPost?: boolean;
  /**
   * Dispatcher replicas (default 1). With more, each runs on its own port behind a round-robin
   * balancer whose URL is dispatcherUrl (they need a shared store: DISPATCHER_REDIS_URL in dispatcherEnv).
   */
  dispatcherReplicas?: number;
  /**
   * Clients reach the servers through their own balancer over one TCP proxy process per server
   * (proxies[i] in front of servers[i]), which a test can freeze with SIGSTOP to blackhole that
   * path; the platform keeps the direct shared URL.
   */
  clientProxies?: boolean;
}

export interface ProxyNode {
  readonly port: number;
  readonly proc: RunningProcess;
}

export interface DispatcherReplica {
  readonly index: number;
  readonly port: number;
  proc: RunningProcess;
}

export class HaCluster {
  readonly group = new ProcessGroup();
  readonly token = randomUUID();
  readonly servers: ServerNode[] = [];
  readonly clients: ClientNode[] = [];
  origin!: CountingOrigin;
  balancer!: Balancer;
  /** With clientProxies: the proxies (one per server) and the clients' balancer over them. */
  readonly proxies: ProxyNode[] = [];
  clientBalancer: Balancer | undefined;
  dispatcher!: RunningProcess;
  dispatcherPort = 0;
  /** With dispatcherReplicas > 1: the replicas, and the balancer in front of them at dispatcherPort. */
  readonly dispatcherReplicas: DispatcherReplica[] = [];
  dispatcherBalancer: Balancer | undefined;
  #dispatcherStarts = 0;
  #clientAccept = '';
  readonly #loads: Load[] = [];

  constructor(readonly options: ClusterOptions = {}) {}

  get sharedUrl(): string {
    return `http://127.0.0.1:${this.balancer.port}`;
  }
  /** Where clients connect (BROKER_SERVER_URL): the shared URL, or their own balancer over the proxies. */
  get clientUrl(): string {
    return this.clientBalancer ? `http://127.0.0.1:${this.clientBalancer.port}` : this.sharedUrl;
  }
  get dispatcherUrl(): string {
    return `http://127.0.0.1:${this.dispatcherPort}`;
  }
  /** The dispatcher's internal API needs the secret when the cluster runs with BROKER_INTERNAL_SECRET. */
  get internalHeaders(): Record<string, string> {
    const secret = this.options.dispatcherEnv?.BROKER_INTERNAL_SECRET;
    return secret ? { 'x-broker-internal-secret': secret } : {};
  }

  /** Origin, dispatcher, servers (all healthy and registered) and the balancer in front of them. */
  async start(): Promise<this> {
    this.origin = await startCountingOrigin(this.options.originDelayMs ?? 0);
    const privateRules = [{ method: 'GET', path: '/*', origin: '${ORIGIN_URL}' }];
    if (this.options.allowPost) privateRules.push({ method: 'POST', path: '/*', origin: '${ORIGIN_URL}' });
    this.#clientAccept = await writeAcceptFile({ private: privateRules, public: [{ method: 'POST', path: '/webhook/*' }] });
    const replicas = this.options.dispatcherReplicas ?? 1;
    if (replicas > 1) {
      const ports = await Promise.all(Array.from({ length: replicas }, () => freePort()));
      ports.forEach((port, index) => this.dispatcherReplicas.push({ index, port, proc: undefined as unknown as RunningProcess }));
      await Promise.all(this.dispatcherReplicas.map((d) => this.startDispatcherReplica(d)));
      this.dispatcher = this.dispatcherReplicas[0]!.proc;
      this.dispatcherBalancer = await startBalancer(ports);
      this.dispatcherPort = this.dispatcherBalancer.port;
    } else {
      this.dispatcherPort = await freePort();
      await this.startDispatcher();
    }
    const count = this.options.servers ?? 3;
    const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
    ports.forEach((port, i) => this.servers.push({ id: String(i), port, proc: undefined as unknown as RunningProcess, starts: 0 }));
    await Promise.all(this.servers.map((s) => this.startServer(s)));
    this.balancer = await startBalancer(ports);
    if (this.options.clientProxies) {
      for (const s of this.servers) {
        const proc = this.group.spawnNode(`proxy-${s.id}`, PROXY_SCRIPT, [], { TARGET_PORT: String(s.port) });
        await proc.waitForOutput('proxy listening');
        const line = proc.output().split('\n').find((l) => l.includes('proxy listening'))!;
        this.proxies.push({ port: (JSON.parse(line) as { port: number }).port, proc });
      }
      this.clientBalancer = await startBalancer(this.proxies.map((p) => p.port));
    }
    await waitFor('every server live at the dispatcher', async () => (await this.liveServerIds()).length === count, { timeoutMs: 30_000, intervalMs: 200 });
    return this;
  }

  /** Starts (or restarts, on the same port) the dispatcher and waits until it answers. */
  async startDispatcher(): Promise<RunningProcess> {
    this.#dispatcherStarts++;
    this.dispatcher = this.group.broker(`dispatcher#${this.#dispatcherStarts}`, 'dispatcher', {
      PORT: String(this.dispatcherPort),
      DISPATCHER_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ...this.options.dispatcherEnv,
    });
    await waitFor('dispatcher up', async () => (await httpStatus(`${this.dispatcherUrl}/readyz`)) === 200, { timeoutMs: 30_000, intervalMs: 100 });
    return this.dispatcher;
  }

  /** Starts (or restarts, on its port) one dispatcher replica and waits until it is ready. */
  async startDispatcherReplica(d: DispatcherReplica): Promise<RunningProcess> {
    this.#dispatcherStarts++;
    d.proc = this.group.broker(`dispatcher-${d.index}#${this.#dispatcherStarts}`, 'dispatcher', {
      PORT: String(d.port),
      DISPATCHER_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ...this.options.dispatcherEnv,
    });
    await waitFor(`dispatcher replica ${d.index} ready`, async () => (await httpStatus(`http://127.0.0.1:${d.port}/readyz`)) === 200, { timeoutMs: 30_000, intervalMs: 100 });
    return d.proc;
  }

  /** Starts (or restarts, on its port) a server and waits until it is ready. */
  async startServer(s: ServerNode): Promise<void> {
    s.starts++;
    s.proc = this.group.broker(`server-${s.id}#${s.starts}`, 'server', {
      PORT: String(s.port),
      BROKER_SERVER_HOST: '127.0.0.1',
      BROKER_SERVER_ID: s.id,
      HOSTNAME: `broker-server-${s.id}`,
      BROKER_SERVER_PEER_URL: `http://127.0.0.1:${s.port}`,
      // For comparing paths when debugging: HA_TEST_DIRECT=1 gives each server a public URL, so
      // clients connect to it directly instead of through the shared balancer.
      ...(process.env.HA_TEST_DIRECT ? { BROKER_SERVER_PUBLIC_URL: `http://127.0.0.1:${s.port}` } : {}),
      DISPATCHER_URL: this.dispatcherUrl,
      BROKER_SERVER_DRAIN_GRACE_MS: '15000',
      LOG_LEVEL: 'info',
      ...this.options.serverEnv,
      // HA_TEST_DEBUG=1: servers log at debug level (with HA_TEST_LOG_DIR to keep the output).
      ...(process.env.HA_TEST_DEBUG ? { LOG_LEVEL: 'debug' } : {}),
    });
    await waitFor(`server ${s.id} ready`, async () => (await httpStatus(`http://127.0.0.1:${s.port}/readyz`)) === 200, { timeoutMs: 30_000, intervalMs: 100 });
  }

  /** Starts HA client n (1-based) against the shared URL; does not wait for it. */
  async startClient(n: number): Promise<ClientNode> {
    const port = await freePort();
    const clientId = `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
    const node: ClientNode = {
      n,
      clientId,
      port,
      prefix: `c${n}`,
      proc: this.#spawnClient(`client-${n}`, n, port, clientId),
    };
    this.clients.push(node);
    return node;
  }

  /** Starts client `c` again (same id, port and origin prefix), as Kubernetes restarts a pod; does not wait for it. */
  restartClient(c: ClientNode, name = `client-${c.n}#${this.group.all().filter((p) => p.name.startsWith(`client-${c.n}`)).length + 1}`): RunningProcess {
    c.proc = this.#spawnClient(name, c.n, c.port, c.clientId);
    return c.proc;
  }

  #spawnClient(name: string, n: number, port: number, clientId: string): RunningProcess {
    return this.group.broker(name, 'client', {
      BROKER_TOKEN: this.token,
      BROKER_SERVER_URL: this.clientUrl,
      BROKER_HA_MODE_ENABLED: 'true',
      BROKER_DISPATCHER_BASE_URL: this.dispatcherUrl,
      BROKER_CLIENT_ID: clientId,
      PREFLIGHT_CHECKS_ENABLED: 'false',
      PORT: String(port),
      ACCEPT: this.#clientAccept,
      ORIGIN_URL: `${this.origin.url}/c${n}`,
      BROKER_CLIENT_DRAIN_GRACE_MS: '10000',
      LOG_LEVEL: 'info',
      ...this.options.clientEnv,
    });
  }

  client(n: number): ClientNode {
    const c = this.clients.find((x) => x.n === n);
    if (!c) throw new Error(`no client ${n}`);
    return c;
  }

  isReady(c: ClientNode): Promise<boolean> {
    return httpStatus(`http://127.0.0.1:${c.port}/readyz`, 1500).then((s) => s === 200);
  }

  async waitReady(clients: ClientNode[], timeoutMs = 60_000): Promise<void> {
    await waitFor(`clients ${clients.map((c) => c.n).join(',')} ready`, async () => (await Promise.all(clients.map((c) => this.isReady(c)))).every(Boolean), { timeoutMs, intervalMs: 200 });
  }

  /**
   * Converged: the dispatcher lists exactly `clients` as allocated and connected, and each is
   * ready. Resolves with the time it happened; the error carries the last dispatcher view.
   */
  async waitConverged(clients: ClientNode[], timeoutMs = 90_000): Promise<number> {
    let view: unknown;
    const want = new Set(clients.map((c) => c.clientId));
    return waitFor(`clients ${clients.map((c) => c.n).join(',')} allocated, connected and ready`, async () => {
      const v = await this.tokenView();
      view = v.allocations;
      const connected = new Set(v.allocations.filter((a) => a.connected).map((a) => a.client_id));
      if (connected.size !== want.size || ![...want].every((id) => connected.has(id))) return 0;
      return (await Promise.all(clients.map((c) => this.isReady(c)))).every(Boolean) ? Date.now() : 0;
    }, { timeoutMs, intervalMs: 250 }).catch((err: Error) => {
      throw new Error(`${err.message}; dispatcher allocations: ${JSON.stringify(view)}`);
    });
  }

  /** The server id a client was last given ("received server id"). */
  allocatedServer(c: ClientNode): string | undefined {
    const last = logLines(c.proc).filter((e) => e.msg === 'received server id').at(-1);
    return last ? String(last.serverId) : undefined;
  }

  async liveServerIds(): Promise<string[]> {
    try {
      const r = await request(`${this.dispatcherUrl}/internal/brokerservers`, { headersTimeout: 3000, bodyTimeout: 3000, reset: true, headers: this.internalHeaders });
      const doc = (await r.body.json()) as { data?: Array<{ id?: string; attributes?: { status?: string; server_id?: string } }> };
      return (doc.data ?? []).filter((s) => s.attributes?.status === 'live').map((s) => String(s.attributes?.server_id ?? s.id));
    } catch {
      return [];
    }
  }

  /** The dispatcher's routing view of the token: allocations and live tunnels per server. */
  async tokenView(): Promise<{ allocations: Array<{ client_id: string; server_id: string; connected: boolean }>; tunnels: number; servers: Array<{ server_id: string; tunnels: number }> }> {
    const r = await request(`${this.dispatcherUrl}/internal/tokens/${hashToken(this.token)}/connections`, { headersTimeout: 3000, bodyTimeout: 3000, reset: true, headers: this.internalHeaders });
    if (r.statusCode !== 200) {
      await r.body.dump();
      return { allocations: [], tunnels: 0, servers: [] };
    }
    const doc = (await r.body.json()) as {
      data: { attributes: { servers: Array<{ server_id: string; connections: Array<{ tunnels: number }> }>; allocations: Array<{ client_id: string; server_id: string; connected: boolean }> } };
    };
    const servers = doc.data.attributes.servers.map((s) => ({ server_id: s.server_id, tunnels: s.connections.reduce((a, c) => a + c.tunnels, 0) }));
    return { allocations: doc.data.attributes.allocations, tunnels: servers.reduce((a, s) => a + s.tunnels, 0), servers };
  }

  /** Requests served per client prefix since `baseline` (a copy of origin.served taken earlier). */
  /** Waits until each of `clients` (default: all) served more than `min` requests from now on: the load reaches every one. */
  async waitServing(clients: readonly ClientNode[] = this.clients, min = 5, what = 'every client serving under load'): Promise<void> {
    const base = new Map(this.origin.served);
    await waitFor(what, () => clients.every((c) => (this.counts(base).get(c.prefix) ?? 0) > min), { timeoutMs: 60_000, intervalMs: 100 });
  }

  counts(baseline: Map<string, number> = new Map()): Map<string, number> {
    const out = new Map<string, number>();
    for (const [k, v] of this.origin.served) out.set(k, v - (baseline.get(k) ?? 0));
    return out;
  }

  /**
   * Processes that crashed: exited although not in `expectedGone` (the ones the test killed or
   * stopped), or printed an uncaught/unhandled error. Each entry names the process and why.
   */
  /** Every log line of every process (killed ones included) that names one of these request ids: how a failed request went. */
  trace(requestIds: readonly string[]): string[] {
    const ids = requestIds.filter(Boolean);
    if (ids.length === 0) return [];
    const out: string[] = [];
    for (const p of this.group.all()) {
      for (const line of p.output().split('\n')) if (ids.some((id) => line.includes(id))) out.push(`${p.name}: ${line.slice(0, 600)}`);
    }
    return out;
  }

  crashes(expectedGone: readonly RunningProcess[] = []): string[] {
    const out: string[] = [];
    for (const p of this.group.all()) {
      const { exitCode, signalCode } = p.child;
      if (!expectedGone.includes(p) && (exitCode !== null || signalCode !== null)) out.push(`${p.name} exited (${exitCode ?? signalCode}): ${p.output().slice(-800)}`);
      const bad = p.output().split('\n').find((l) => /uncaught|unhandled/i.test(l));
      if (bad) out.push(`${p.name}: ${bad.slice(0, 400)}`);
    }
    return out;
  }

  /**
   * After stop(): every process not in `expectedGone` exited 0 (a graceful SIGTERM), within
   * `timeoutMs`; returns the ones that did not, with their code or signal.
   */
  async exitProblems(expectedGone: readonly RunningProcess[] = [], timeoutMs = 40_000): Promise<string[]> {
    const out: string[] = [];
    const deadline = new Promise<string>((r) => setTimeout(() => r('still running'), timeoutMs).unref());
    for (const p of this.group.all()) {
      if (expectedGone.includes(p)) continue;
      const code = await Promise.race([p.exited, deadline]);
      if (code !== 0) out.push(`${p.name}: ${code}`);
    }
    return out;
  }

  /** SteadyLoadTarget: load ids the origin received. */
  seenIds(): ReadonlyMap<string, number> {
    return this.origin.seenIds;
  }

  /** SteadyLoadTarget: retries (relay retries of all reasons + peer forwards moved on) per running server instance. */
  async retries(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    await Promise.all(
      this.servers.map(async (s) => {
        if (!s.proc || s.proc.child.exitCode !== null || s.proc.child.signalCode !== null) return;
        try {
          const r = await request(`http://127.0.0.1:${s.port}/metrics`, { headersTimeout: 3000, bodyTimeout: 3000, reset: true });
          const text = await r.body.text();
          let sum = 0;
          // Relays moved to another connection, and peer forwards that moved on to the next target.
          for (const line of text.split('\n')) {
            if (line.startsWith('broker_server_relay_retries_total') || line.startsWith('broker_server_peer_forwards_total{outcome="unavailable"}')) sum += Number(line.split(' ').at(-1)) || 0;
          }
          out.set(s.proc.name, sum);
        } catch {
          // down or stopped: its last scraped value stands
        }
      }),
    );
    return out;
  }

  /** Hedges counted by the running servers (broker_server_relay_hedges_total, every target). */
  async hedges(): Promise<number> {
    let sum = 0;
    for (const s of this.servers) {
      if (!s.proc || s.proc.child.exitCode !== null || s.proc.child.signalCode !== null) continue;
      sum += await this.serverMetric(s, 'broker_server_relay_hedges_total{');
    }
    return sum;
  }

  /** The sum of the metric lines of server `s` that start with `prefix` (a name, or a name and labels). */
  async serverMetric(s: ServerNode, prefix: string): Promise<number> {
    const r = await request(`http://127.0.0.1:${s.port}/metrics`, { headersTimeout: 3000, bodyTimeout: 3000, reset: true });
    let sum = 0;
    for (const line of (await r.body.text()).split('\n')) if (line.startsWith(prefix)) sum += Number(line.split(' ').at(-1)) || 0;
    return sum;
  }

  platformUrl(path: string): string {
    return `${this.sharedUrl}/broker/${this.token}/${path.replace(/^\//, '')}`;
  }

  async #one(url: string, failures: LoadFailure[]): Promise<boolean> {
    const at = Date.now();
    try {
      // A fresh TCP connection per request, so the balancer spreads them over the servers as
      // a Service spreads the platform's connections (and no keep-alive socket to a server that
      // just exited is reused: that would be a test-client artefact, not a broker failure).
      const r = await request(url, { reset: true, headersTimeout: 60_000, bodyTimeout: 60_000 });
      const text = await r.body.text();
      if (r.statusCode === 200) return true;
      failures.push({ at, url, reason: `${r.statusCode} ${String(r.headers['x-broker-failure'] ?? '')} ${text.slice(0, 120)}`.trim() });
    } catch (err) {
      failures.push({ at, url, reason: `error ${(err as Error).message}` });
    }
    return false;
  }

  /** Steady GET load at `ratePerSecond` through the shared URL until stopped. */
  startLoad(ratePerSecond = 40): Load {
    const failures: LoadFailure[] = [];
    const inflight = new Set<Promise<unknown>>();
    let sent = 0;
    let ok = 0;
    let seq = 0;
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    // Scheduled against the start time so a slow tick does not lower the rate.
    const tick = () => {
      const due = Math.floor(((Date.now() - started) * ratePerSecond) / 1000);
      while (sent < due) {
        sent++;
        const p = this.#one(this.platformUrl(`load/${seq++}`), failures).then((good) => {
          if (good) ok++;
        });
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
      timer = setTimeout(tick, 10);
    };
    tick();
    const load: Load = {
      get sent() {
        return sent;
      },
      get ok() {
        return ok;
      },
      failures,
      async stop() {
        clearTimeout(timer);
        await Promise.all([...inflight]);
      },
    };
    this.#loads.push(load);
    return load;
  }

  /** `total` GETs through the shared URL, `concurrency` at a time; resolves with the failures. */
  async burst(total: number, concurrency = 16): Promise<{ ok: number; failures: LoadFailure[] }> {
    const failures: LoadFailure[] = [];
    let next = 0;
    let ok = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        if (await this.#one(this.platformUrl(`burst/${i}`), failures)) ok++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return { ok, failures };
  }

  /** Stops loads, every process, the balancer and the origin; returns all process output. */
  async stop(): Promise<string> {
    await Promise.all(this.#loads.map((l) => l.stop()));
    await this.group.stopAll();
    const output = this.group.allOutput();
    // For debugging a failed run: HA_TEST_LOG_DIR=/tmp/x keeps every process's output there.
    if (process.env.HA_TEST_LOG_DIR) {
      const { mkdir, writeFile } = await import('node:fs/promises');
      await mkdir(process.env.HA_TEST_LOG_DIR, { recursive: true });
      await Promise.all(this.group.all().map((p) => writeFile(`${process.env.HA_TEST_LOG_DIR}/${p.name}.log`, p.output())));
    }
    await this.balancer?.close();
    await this.clientBalancer?.close();
    await this.dispatcherBalancer?.close();
    await this.origin?.close();
    return output;
  }
}

export function describeFailures(failures: readonly LoadFailure[], since = 0): string {
  const byReason = new Map<string, number>();
  for (const f of failures) byReason.set(f.reason, (byReason.get(f.reason) ?? 0) + 1);
  const first = failures.slice(0, 5).map((f) => `+${f.at - since} ms ${f.url}: ${f.reason}`);
  return `${failures.length} failed: ${[...byReason].map(([r, n]) => `${n}× ${r}`).join('; ')}\n  ${first.join('\n  ')}`;
}

/**
 * The lifecycle every HA end-to-end file shares: before its tests, a cluster with clients
 * 1..`clients` allocated and ready; after them, everything stopped and the token proven absent
 * from every process's output.
 */
export function clusterForFile(options: ClusterOptions, clients: number): HaCluster {
  const cluster = new HaCluster(options);
  before(async () => {
    await cluster.start();
    for (let n = 1; n <= clients; n++) await cluster.startClient(n);
    await cluster.waitReady(cluster.clients);
  });
  after(async () => {
    const output = await cluster.stop();
    assert.ok(!output.includes(cluster.token), 'the token appears in process output');
  });
  return cluster;
}
