import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { CLI } from './paths.js';
import { waitFor } from './wait.js';

export interface RunningProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything the process wrote so far (stdout and stderr interleaved). */
  output(): string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  waitForOutput(pattern: RegExp | string, timeoutMs?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM then wait; SIGKILL if it outlives the deadline. */
  stop(timeoutMs?: number): Promise<number | string>;
}

/**
 * Starts real processes for a test and guarantees they are gone afterwards. Every byte a
 * process writes is kept so a test can assert on log lines and scan for leaked secrets.
 */
export class ProcessGroup {
  readonly #procs: RunningProcess[] = [];

  /** Starts `node <script> ...args` with exactly `env` (plus PATH/HOME), so the machine's env never leaks in. */
  spawnNode(name: string, script: string, args: string[], env: Record<string, string | undefined>, nodeBin: string = process.execPath, opts: { cwd?: string } = {}): RunningProcess {
    const child = spawn(nodeBin, [script, ...args], {
      cwd: opts.cwd,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString('utf8')));
    const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
    const proc: RunningProcess = {
      name,
      child,
      pid: child.pid!,
      output: () => out,
      exited,
      async waitForOutput(pattern, timeoutMs = 15_000) {
        const test = typeof pattern === 'string' ? (s: string) => s.includes(pattern) : (s: string) => pattern.test(s);
        let ended = false;
        void exited.then(() => (ended = true));
        await waitFor(`${name} to print ${pattern}`, () => {
          if (test(out)) return true;
          if (ended) throw new Error(`${name} exited; output:\n${out.slice(-4000)}`);
          return false;
        }, { timeoutMs });
      },
      kill(signal = 'SIGKILL') {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      },
      async stop(timeoutMs = 30_000) {
        if (child.exitCode !== null || child.signalCode !== null) return exited;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        try {
          return await exited;
        } finally {
          clearTimeout(timer);
        }
      },
    };
    this.#procs.push(proc);
    return proc;
  }

  /** Starts one of our programs (`broker <command>`). */
  broker(name: string, command: string, env: Record<string, string | undefined>): RunningProcess {
    return this.spawnNode(name, CLI, [command], env);
  }

  all(): readonly RunningProcess[] {
    return this.#procs;
  }

  /** Output of every process, for secret scans. */
  allOutput(): string {
    return this.#procs.map((p) => `--- ${p.name}\n${p.output()}`).join('\n');
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.#procs.map((p) => p.stop(5_000)));
  }

  killAll(): void {
    for (const p of this.#procs) p.kill('SIGKILL');
  }
}
