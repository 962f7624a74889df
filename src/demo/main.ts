import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createWriteStream, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { Agent, request } from 'undici';
import { startBalancer } from './balancer.js';
import { startDemoOrigin } from './origin.js';
import { FAILURE_HEADER } from '../http/server-helpers.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));
const TOKEN = '7f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f';
const SERVERS = 3;
const CLIENTS = 5;
const RATE_PER_SECOND = 40;

interface Proc {
  name: string;
  env: Record<string, string>;
  child?: ChildProcess;
  log: WriteStream;
  serverId?: string;
  state: 'running' | 'killed' | 'exited';
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * `npm start`: a complete local HA system on the embedded defaults — a dispatcher (memory
 * store), 3 broker servers behind a round-robin balancer (the stand-in for a Kubernetes
 * Service), 5 clients of one token (4 get allocated, the 5th waits), a demo origin — with
 * steady platform traffic and a live table of who serves what. Keys: 1-5 kill -9 that
 * client, r restarts killed clients, q quits.
 */
export async function runDemo(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ha-broker-demo-'));
  const origin = await startDemoOrigin();
  const dispatcherPort = await freePort();
  const serverPorts = await Promise.all(Array.from({ length: SERVERS }, freePort));
  const clientPorts = await Promise.all(Array.from({ length: CLIENTS }, freePort));
  const balancer = await startBalancer(serverPorts);
  const serverUrl = `http://127.0.0.1:${balancer.port}`;

  const serverAccept = join(dir, 'server-accept.json');
  const clientAccept = join(dir, 'client-accept.json');
  await writeFile(serverAccept, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [{ method: 'any', path: '/webhook/*', origin: `http://127.0.0.1:${origin.port}/webhooks` }] }, null, 2));
  await writeFile(clientAccept, JSON.stringify({ private: [{ method: 'GET', path: '/*', origin: '${ORIGIN_URL}' }], public: [{ method: 'POST', path: '/webhook/*' }] }, null, 2));

  const procs: Proc[] = [];
  const start = (p: Proc, command: string) => {
    const child = spawn(process.execPath, [CLI, command], { env: { PATH: process.env.PATH ?? '', ...p.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    p.child = child;
    p.state = 'running';
    p.serverId = undefined;
    let partial = '';
    child.stdout.on('data', (d: Buffer) => {
      p.log.write(d);
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.includes('received server id')) continue;
        try {
          const entry = JSON.parse(line) as { msg?: string; serverId?: unknown };
          if (entry.msg === 'received server id') p.serverId = String(entry.serverId);
        } catch {
          // not a JSON log line
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => p.log.write(d));
    child.on('exit', () => {
      if (p.state === 'running') p.state = 'exited';
    });
  };
  const make = (name: string, env: Record<string, string>): Proc => {
    const p: Proc = { name, env, log: createWriteStream(join(dir, `${name}.log`)), state: 'exited' };
    procs.push(p);
    return p;
  };

  const dispatcher = make('dispatcher', { PORT: String(dispatcherPort), LOG_LEVEL: 'info' });
  start(dispatcher, 'dispatcher');
  const servers = serverPorts.map((port, i) =>
    make(`server-${i}`, {
      PORT: String(port),
      BROKER_SERVER_ID: String(i),
      HOSTNAME: `broker-server-${i}`,
      BROKER_SERVER_PEER_URL: `http://127.0.0.1:${port}`,
      DISPATCHER_URL: `http://127.0.0.1:${dispatcherPort}`,
      ACCEPT: serverAccept,
      LOG_LEVEL: 'info',
    }),
  );
  for (const s of servers) start(s, 'server');
  const clients = clientPorts.map((port, i) =>
    make(`client-${i + 1}`, {
      BROKER_TOKEN: TOKEN,
      BROKER_SERVER_URL: serverUrl,
      BROKER_CLIENT_URL: `http://127.0.0.1:${port}`,
      BROKER_HA_MODE_ENABLED: 'true',
      BROKER_DISPATCHER_BASE_URL: `http://127.0.0.1:${dispatcherPort}`,
      BROKER_CLIENT_ID: `00000000-0000-4000-8000-00000000000${i + 1}`,
      PREFLIGHT_CHECKS_ENABLED: 'false',
      PORT: String(port),
      ACCEPT: clientAccept,
      ORIGIN_URL: `http://127.0.0.1:${origin.port}/c${i + 1}`,
      LOG_LEVEL: 'info',
    }),
  );
  for (const c of clients) start(c, 'client');

  const readiness = new Map<string, string>();
  // Platform traffic: steady GETs through the balancer, as the Snyk platform calls the servers.
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: 16 });
  let ok = 0;
  let failed = 0;
  const failures = new Map<string, number>();
  let seq = 0;
  // Traffic starts once a client serves: requests before any tunnel exists would only show 404s.
  const traffic = setInterval(() => {
    if (![...readiness.values()].includes('serving')) return;
    const n = seq++;
    request(`${serverUrl}/broker/${TOKEN}/demo/${n}`, { dispatcher: agent, headersTimeout: 30_000, bodyTimeout: 30_000 })
      .then(async (res) => {
        await res.body.dump();
        if (res.statusCode === 200) ok++;
        else {
          failed++;
          const reason = `${res.statusCode} ${String(res.headers[FAILURE_HEADER] ?? '')}`.trim();
          failures.set(reason, (failures.get(reason) ?? 0) + 1);
        }
      })
      .catch((err: Error) => {
        failed++;
        failures.set(err.message, (failures.get(err.message) ?? 0) + 1);
      });
  }, 1000 / RATE_PER_SECOND);

  const previous = new Map<string, number>();
  const probe = async (c: Proc, port: number) => {
    if (c.state !== 'running') return readiness.set(c.name, c.state);
    try {
      const res = await request(`http://127.0.0.1:${port}/readyz`, { headersTimeout: 900, bodyTimeout: 900 });
      await res.body.dump();
      readiness.set(c.name, res.statusCode === 200 ? 'serving' : 'waiting');
    } catch {
      readiness.set(c.name, 'starting');
    }
  };
  const tty = process.stdout.isTTY;
  let tick = 0;
  const render = async () => {
    await Promise.all(clients.map((c, i) => probe(c, clientPorts[i])));
    const lines = [
      `ha-broker demo — token ${TOKEN.slice(0, 4)}-...-${TOKEN.slice(-4)}, logs in ${dir}`,
      `dispatcher :${dispatcherPort}   servers ${serverPorts.map((p, i) => `${i}:${p}`).join(' ')} behind balancer :${balancer.port}   origin :${origin.port}`,
      `platform traffic ${RATE_PER_SECOND} req/s   ok ${ok}   failed ${failed}${failures.size ? `   (${[...failures].map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}`,
      '',
      'client     pid      server  state      served  last second',
    ];
    for (const c of clients) {
      const key = `c${c.name.split('-')[1]}`;
      const served = origin.served.get(key) ?? 0;
      const delta = served - (previous.get(key) ?? 0);
      previous.set(key, served);
      lines.push(
        `${c.name.padEnd(10)} ${String(c.child?.pid ?? '-').padEnd(8)} ${(c.serverId ?? '-').padEnd(7)} ${(readiness.get(c.name) ?? '?').padEnd(10)} ${String(served).padStart(6)}  ${'#'.repeat(Math.min(delta, 40))} ${delta}`,
      );
    }
    lines.push('', tty ? 'keys: 1-5 kill -9 that client · r restart killed clients · q quit (or Ctrl-C)' : `(kill a client with: kill -9 <pid>; Ctrl-C stops the demo)`);
    if (tty) process.stdout.write(`\x1b[2J\x1b[H${lines.join('\n')}\n`);
    else if (tick % 5 === 0) process.stdout.write(`${lines.join('\n')}\n\n`);
    tick++;
  };
  const display = setInterval(() => void render(), 1000);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    clearInterval(traffic);
    clearInterval(display);
    if (process.stdin.isTTY) process.stdin.setRawMode(false);
    process.stdin.pause();
    process.stdout.write('\nstopping the demo...\n');
    const all = [...clients, ...servers, dispatcher];
    await Promise.all(all.map((p) => new Promise<void>((resolve) => {
      const child = p.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    })));
    await balancer.close();
    await origin.close();
    await agent.close();
    process.stdout.write(`done: ${ok} requests ok, ${failed} failed. Logs kept in ${dir}\n`);
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  if (process.stdin.isTTY) {
    process.stdin.setRawMode(true);
    process.stdin.resume();
    process.stdin.on('data', (key: Buffer) => {
      const k = key.toString();
      if (k === 'q' || k === '\u0003') return void stop();
      if (k === 'r') {
        for (const c of clients) if (c.state !== 'running') start(c, 'client');
        return;
      }
      const n = Number(k);
      if (n >= 1 && n <= CLIENTS) {
        const c = clients[n - 1];
        if (c.state === 'running') {
          c.state = 'killed';
          c.child?.kill('SIGKILL');
        }
      }
    });
  }
  await new Promise<never>(() => {
    /* runs until Ctrl-C */
  });
}
