// Process and network helpers for running rendered pods as local processes: free ports, polling
// with deadlines, child processes with captured logs, a round-robin TCP balancer (a Service with
// several endpoints) and a recording HTTP proxy.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, connect, type AddressInfo, type Server as NetServer } from 'node:net';
import { pidHoldingSocket, tcpSocketInodes } from '../support/proc-sockets.js';

/** A free TCP port on 127.0.0.1 (listen on 0, read it back, close). */
export async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value; throws with `what` and the last error at the deadline. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message ?? String(last)}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/** GET returning status and body text; throws on network errors. */
export async function httpGet(url: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: await res.text() };
}

export class Proc {
  readonly child: ChildProcess;
  private readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    opts: { env: NodeJS.ProcessEnv; cwd: string },
  ) {
    this.child = spawn(command, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        this.lines.push(line);
        if (this.lines.length > 400) this.lines.shift();
      }
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve({ code, signal });
      });
      this.child.once('error', (err) => {
        this.lines.push(`spawn error: ${err.message}`);
        this.exitInfo = { code: -1, signal: null };
        resolve({ code: -1, signal: null });
      });
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} has no pid (spawn failed?)`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  logs(n = 60): string {
    return this.lines.slice(-n).map((l) => `  [${this.name}] ${l}`).join('\n');
  }

  hasLog(re: RegExp): boolean {
    return this.lines.some((l) => re.test(l));
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /** SIGKILL if still running, and wait for the exit. */
  async kill(): Promise<void> {
    if (this.running) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

/**
 * A Service with several endpoints: accepts TCP connections and forwards each to the next endpoint
 * (round robin). Endpoints are host ports; an empty list refuses connections.
 */
export class Balancer {
  private server: NetServer | undefined;
  private next = 0;
  endpoints: number[] = [];
  port = 0;

  async start(): Promise<number> {
    this.server = createNetServer((socket) => {
      if (this.endpoints.length === 0) {
        socket.destroy();
        return;
      }
      const target = this.endpoints[this.next++ % this.endpoints.length]!;
      const upstream = connect(target, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      const close = () => {
        socket.destroy();
        upstream.destroy();
      };
      socket.on('error', close);
      upstream.on('error', close);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  async stop(): Promise<void> {
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}

export interface Recorded {
  method: string;
  url: string;
  status: number;
  responseBody: string;
}

/** An HTTP proxy in front of one upstream that records every exchange. */
export class RecordingProxy {
  private server: HttpServer | undefined;
  readonly records: Recorded[] = [];
  port = 0;

  constructor(private readonly upstreamPort: number) {}

  async start(): Promise<number> {
    this.server = createHttpServer((req, res) => {
      const upstream = httpRequest(
        { host: '127.0.0.1', port: this.upstreamPort, method: req.method, path: req.url, headers: req.headers },
        (up: IncomingMessage) => {
          const chunks: Buffer[] = [];
          up.on('data', (c: Buffer) => chunks.push(c));
          up.on('end', () => {
            const body = Buffer.concat(chunks);
            this.records.push({ method: req.method ?? '', url: req.url ?? '', status: up.statusCode ?? 0, responseBody: body.toString('utf8') });
            const headers = { ...up.headers };
            delete headers['transfer-encoding'];
            headers['content-length'] = String(body.length);
            res.writeHead(up.statusCode ?? 502, headers);
            res.end(body);
          });
        },
      );
      upstream.on('error', (err) => {
        this.records.push({ method: req.method ?? '', url: req.url ?? '', status: 502, responseBody: err.message });
        res.writeHead(502);
        res.end();
      });
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  async stop(): Promise<void> {
    if (this.server) {
      this.server.closeAllConnections();
      await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    }
  }
}

/**
 * The pid (among `pids`) that owns the local end of a loopback TCP connection whose ports are
 * (peerPort -> ourPort), found through /proc/net/tcp{,6} and /proc/<pid>/fd (Linux).
 */
export function ownerOfConnection(peerPort: number, ourPort: number, pids: number[]): number | undefined {
  return pidHoldingSocket(tcpSocketInodes((r) => r.localPort === peerPort && r.remotePort === ourPort), pids);
}
