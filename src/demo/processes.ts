import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';

/** One broker process of the demo (dispatcher, server or client), restartable. */
export interface DemoProcess {
  name: string;
  env: Record<string, string>;
  child?: ChildProcess;
  log: WriteStream;
  serverId?: string;
  /** A Universal client's server id per connection (its allocation log lines name the connection). */
  serverIds: Map<string, string>;
  state: 'running' | 'killed' | 'exited';
}

/** A process not started yet, logging to `<dir>/<name>.log`. */
export function createDemoProcess(dir: string, name: string, env: Record<string, string>): DemoProcess {
  return { name, env, log: createWriteStream(join(dir, `${name}.log`)), serverIds: new Map(), state: 'exited' };
}

/** Spawns `cli <command>` for the process; a client's server id (per connection for a Universal one) is picked from its log lines. */
export function startDemoProcess(cli: string, p: DemoProcess, command: string): void {
  const child = spawn(process.execPath, [cli, command], { env: { PATH: process.env.PATH ?? '', ...p.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  p.child = child;
  p.state = 'running';
  p.serverId = undefined;
  p.serverIds.clear();
  let partial = '';
  child.stdout.on('data', (d: Buffer) => {
    p.log.write(d);
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes('received server id')) continue;
      try {
        const entry = JSON.parse(line) as { msg?: string; serverId?: unknown; connection?: unknown };
        if (entry.msg !== 'received server id') continue;
        p.serverId = String(entry.serverId);
        if (typeof entry.connection === 'string') p.serverIds.set(entry.connection, p.serverId);
      } catch {
        // not a JSON log line
      }
    }
  });
  child.stderr.on('data', (d: Buffer) => p.log.write(d));
  child.on('exit', () => {
    if (p.state === 'running') p.state = 'exited';
  });
}

/** kill -9, as a crash would. */
export function killDemoProcess(p: DemoProcess): void {
  if (p.state !== 'running') return;
  p.state = 'killed';
  p.child?.kill('SIGKILL');
}

/** SIGTERM to every live process; one still running after 30 s gets SIGKILL. */
export async function stopDemoProcesses(procs: DemoProcess[]): Promise<void> {
  await Promise.all(procs.map((p) => new Promise<void>((resolve) => {
    const child = p.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  })));
}
