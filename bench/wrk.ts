import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadResult } from './load.js';

const run = promisify(execFile);

/**
 * wrk (C, from Debian) drives the closed-loop scenarios: a load generator in JavaScript
 * tops out below what the direct path can serve on this machine, which would flatten ratios.
 */
export async function ensureWrk(): Promise<string> {
  try {
    await run('wrk', ['--version']).catch((e: { stdout?: string }) => {
      // wrk --version exits 1 but prints its banner
      if (!e.stdout?.includes('wrk')) throw e;
    });
    return 'wrk';
  } catch {
    if (process.getuid?.() === 0) {
      process.stderr.write('wrk not found: installing it with apt-get (Debian package wrk)\n');
      await run('apt-get', ['install', '-y', '-qq', 'wrk'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      return 'wrk';
    }
    throw new Error('the benchmark needs wrk: install it with `sudo apt-get install wrk`');
  }
}

function toMs(value: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

export function parseWrk(output: string, durationMs: number): LoadResult {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1] ?? NaN);
  const total = Number(/(\d+) requests in/.exec(output)?.[1] ?? NaN);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const socketErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const latencyLine = /Latency\s+(\S+)\s+(\S+)\s+(\S+)/.exec(output);
  return {
    requests: total,
    errors: non2xx + socketErrors,
    durationMs,
    rps,
    p50: toMs(/\s50%\s+(\S+)/.exec(output)?.[1] ?? ''),
    p99: toMs(/\s99%\s+(\S+)/.exec(output)?.[1] ?? ''),
    max: latencyLine ? toMs(latencyLine[3]!) : NaN,
  };
}

export async function wrkClosedLoop(url: string, { connections = 32, durationMs = 10_000, threads = 2, postBytes = 0 } = {}): Promise<LoadResult> {
  const args = [`-t${threads}`, `-c${connections}`, `-d${Math.round(durationMs / 1000)}s`, '--latency', '--timeout', '30s'];
  if (postBytes > 0) {
    const dir = await mkdtemp(join(tmpdir(), 'wrk-'));
    const script = join(dir, 'post.lua');
    await writeFile(script, `wrk.method = "POST"\nwrk.body = string.rep("b", ${postBytes})\nwrk.headers["Content-Type"] = "application/octet-stream"\n`);
    args.push('-s', script);
  }
  args.push(url);
  const { stdout } = await run('wrk', args, { maxBuffer: 1024 * 1024 });
  return parseWrk(stdout, durationMs);
}
