import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

/** Debian's package path; override with REDIS_SERVER. */
export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';

export interface RedisInstance {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  output(): string;
  /** SIGTERM, SIGKILL after 5 s; removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

export async function redisServerAvailable(): Promise<boolean> {
  try {
    await access(REDIS_SERVER);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts a throwaway `redis-server` on a free loopback port in a temp dir, with persistence
 * off (`--save '' --appendonly no`), so a restart starts empty. Always pair with stop() in t.after/after.
 */
export async function startRedis(fixedPort?: number): Promise<RedisInstance> {
  if (!(await redisServerAvailable())) throw new Error(`redis-server not found at ${REDIS_SERVER} (apt-get install redis-server, or set REDIS_SERVER)`);
  const dir = await mkdtemp(join(tmpdir(), 'ha-broker-redis-'));
  for (let attempt = 1; ; attempt++) {
    // A fixed port restarts a Redis where its clients expect it (the fault suite).
    const port = fixedPort ?? (await freePort());
    const child: ChildProcess = spawn(
      REDIS_SERVER,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'notice'],
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir },
    );
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString('utf8')));
    const exited = once(child, 'exit');
    let ended = false;
    void exited.then(() => (ended = true));
    try {
      await waitFor('redis-server to accept connections', () => {
        if (/Ready to accept connections/i.test(out)) return true;
        if (ended) throw new Error(`redis-server exited:\n${out.slice(-2000)}`);
        return false;
      }, { timeoutMs: 15_000 });
    } catch (err) {
      if (!ended) child.kill('SIGKILL');
      // The port was taken between freePort() and bind: try another one.
      if (fixedPort === undefined && attempt < 3 && /Address already in use/i.test(out)) continue;
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    let stopped: Promise<void> | undefined;
    return {
      url: `redis://127.0.0.1:${port}`,
      port,
      pid: child.pid!,
      output: () => out,
      stop() {
        stopped ??= (async () => {
          if (!ended) {
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
            await exited;
            clearTimeout(timer);
          }
          await rm(dir, { recursive: true, force: true });
        })();
        return stopped;
      },
    };
  }
}
