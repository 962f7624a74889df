// One broker server and one broker client process (ours) for the fault files, with an origin and
// optionally a TCP cutter between the client and the server (the tunnel and the answer uploads
// both go through it). Platform requests go straight to the server.
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { ProcessGroup, type RunningProcess } from './processes.js';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';
import { readyTunnels as readyTunnelsAt } from './connection-status.js';
import { startTcpCutter, type TcpCutter } from './tcp-cutter.js';

export interface BrokerPair {
  readonly token: string;
  readonly group: ProcessGroup;
  readonly serverUrl: string;
  readonly server: RunningProcess;
  client: RunningProcess;
  readonly clientPort: number;
  readonly cutter?: TcpCutter;
  platformUrl(path: string): string;
  readyTunnels(): Promise<number>;
  waitTunnels(n: number, timeoutMs?: number): Promise<void>;
  /** Starts (again) the client process with the same env. */
  startClient(name?: string): RunningProcess;
  stop(): Promise<string>;
}

export interface PairOptions {
  originUrl: string;
  serverEnv?: Record<string, string>;
  clientEnv?: Record<string, string>;
  /** Put a TCP cutter between client and server. */
  cutter?: boolean;
}

export async function startBrokerPair(options: PairOptions): Promise<BrokerPair> {
  const token = randomUUID();
  const group = new ProcessGroup();
  const dir = await mkdtemp(join(tmpdir(), 'faults-'));
  const serverAccept = join(dir, 'server-accept.json');
  await writeFile(serverAccept, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [] }));
  const clientAccept = join(dir, 'client-accept.json');
  await writeFile(clientAccept, JSON.stringify({ private: [{ method: 'any', path: '/*', origin: '${ORIGIN_URL}' }], public: [] }));
  const port = await freePort();
  const serverUrl = `http://127.0.0.1:${port}`;
  const server = group.broker('server', 'server', { PORT: String(port), BROKER_SERVER_HOST: '127.0.0.1', ACCEPT: serverAccept, LOG_LEVEL: 'info', ...options.serverEnv });
  await server.waitForOutput('broker server listening', 30_000);
  const cutter = options.cutter ? await startTcpCutter(port) : undefined;
  const clientPort = await freePort();
  const clientEnv = {
    BROKER_TOKEN: token,
    BROKER_SERVER_URL: cutter ? cutter.url : serverUrl,
    PORT: String(clientPort),
    ACCEPT: clientAccept,
    PREFLIGHT_CHECKS_ENABLED: 'false',
    ORIGIN_URL: options.originUrl,
    LOG_LEVEL: 'info',
    ...options.clientEnv,
  };
  let starts = 0;
  const readyTunnels = () => readyTunnelsAt(serverUrl, token);
  const pair: BrokerPair = {
    token,
    group,
    serverUrl,
    server,
    client: undefined as unknown as RunningProcess,
    clientPort,
    cutter,
    platformUrl: (path) => `${serverUrl}/broker/${token}/${path.replace(/^\//, '')}`,
    readyTunnels,
    waitTunnels: (n, timeoutMs = 60_000) => waitFor(`${n} ready tunnels`, async () => (await readyTunnels()) === n, { timeoutMs, intervalMs: 100 }).then(() => undefined),
    startClient(name = 'client') {
      starts++;
      pair.client = group.broker(`${name}#${starts}`, 'client', clientEnv);
      return pair.client;
    },
    async stop() {
      await group.stopAll();
      await cutter?.close();
      const out = group.allOutput();
      if (process.env.HA_TEST_LOG_DIR) {
        const { mkdir, writeFile: write } = await import('node:fs/promises');
        await mkdir(process.env.HA_TEST_LOG_DIR, { recursive: true });
        await Promise.all(group.all().map((p) => write(`${process.env.HA_TEST_LOG_DIR}/${p.name}.log`, p.output())));
      }
      return out;
    },
  };
  pair.startClient();
  await pair.waitTunnels(2);
  return pair;
}

/** Value of one Prometheus sample (sum over label sets matching `labels`), or 0. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

export async function scrape(url: string): Promise<string> {
  const r = await request(url, { reset: true, headersTimeout: 5000, bodyTimeout: 5000 });
  return r.body.text();
}

export interface PlatformResult {
  status: number;
  failure?: string;
  /** The body was read to its end without an error. */
  complete: boolean;
  /** The body read failed (connection reset, incomplete chunked body, length mismatch). */
  aborted?: string;
  body: Buffer;
  /** Bytes read and their sha256 (hex), whether or not kept. */
  bytes: number;
  sha256: string;
  /** No answer (or no end of body) within the deadline. */
  hung: boolean;
}

/**
 * One platform request as a platform would make it (fresh connection); never throws. A request
 * that neither ends nor fails within `deadlineMs` is reported as hung.
 */
export async function platformRequest(url: string, opts: { method?: string; body?: string; headers?: Record<string, string>; deadlineMs?: number; keepBody?: boolean } = {}): Promise<PlatformResult> {
  const signal = AbortSignal.timeout(opts.deadlineMs ?? 120_000);
  let status = 0;
  let failure: string | undefined;
  const chunks: Buffer[] = [];
  const hash = createHash('sha256');
  let bytes = 0;
  const done = (rest: Omit<PlatformResult, 'bytes' | 'sha256' | 'body' | 'status' | 'failure'>): PlatformResult => ({ status, failure, body: Buffer.concat(chunks), bytes, sha256: hash.digest('hex'), ...rest });
  try {
    const r = await request(url, { method: (opts.method ?? 'GET') as 'GET', body: opts.body, headers: opts.headers, reset: true, signal, headersTimeout: 0, bodyTimeout: 0 });
    status = r.statusCode;
    failure = r.headers['x-broker-failure'] as string | undefined;
    try {
      for await (const c of r.body) {
        bytes += (c as Buffer).length;
        hash.update(c as Buffer);
        if (opts.keepBody !== false) chunks.push(c as Buffer);
      }
    } catch (err) {
      const hung = signal.aborted;
      return done({ complete: false, aborted: hung ? undefined : describe(err), hung });
    }
    return done({ complete: true, hung: false });
  } catch (err) {
    return done({ complete: false, aborted: describe(err), hung: signal.aborted });
  }
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  return [e.code, e.cause?.code, e.message].filter(Boolean).join(' ');
}
