import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { download, type LoadResult } from './load.js';
import { ensureWrk, wrkClosedLoop } from './wrk.js';
import { rssMiB, sampleRss } from './rss.js';
import { startBenchOrigin } from './origin.js';
import { brokerPair, type System } from './systems.js';

/**
 * Interleaved A/B comparison for optimisation work on a noisy machine: every variant runs side
 * by side (each its own server and client on one shared origin) and the wrk runs alternate
 * A, B, A, B... so background load hits all variants alike; medians are reported.
 *
 *   node build/bench/ab.js --variant before=/tmp/before/cli.js --variant after=dist/cli.js \
 *     [--env after:MALLOC_ARENA_MAX=2] [--server-env after:NODE_OPTIONS=--max-semi-space-size=4] [--snyk] [--runs 5] [--duration 8000] [--path /small] [--post-bytes 65536]
 *     [--large 268435456] [--strace] [--floor] [--settle 12000]
 *
 * --env sets a variable for a variant's client and server, --server-env for its server only
 * (applied after --env).
 * --floor adds the bare relay of floor-relay.ts (compatible path, and answers over the
 * tunnel): what Node with the same parts reaches when a broker's work is left out.
 * --settle also reads each process's RSS after that many ms of idle time following the runs
 * (what the process gives back once the load is over).
 * --strace counts the syscalls of each variant's client and server during one extra run
 * (strace -c -f), reported per relayed request.
 */
const { values } = parseArgs({
  options: {
    variant: { type: 'string', multiple: true, default: [] },
    env: { type: 'string', multiple: true, default: [] },
    'server-env': { type: 'string', multiple: true, default: [] },
    snyk: { type: 'boolean', default: false },
    floor: { type: 'boolean', default: false },
    runs: { type: 'string', default: '5' },
    duration: { type: 'string', default: '8000' },
    path: { type: 'string', default: '/small' },
    'post-bytes': { type: 'string', default: '0' },
    large: { type: 'string', default: '0' },
    strace: { type: 'boolean', default: false },
    settle: { type: 'string', default: '0' },
  },
});

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};
const fmt = (n: number | null | undefined, d = 1) => (n === null || n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));
const log = (line: string) => process.stderr.write(`${line}\n`);

interface Variant {
  name: string;
  cli?: string;
  env: Record<string, string>;
  serverEnv?: Record<string, string>;
  kind?: 'snyk-broker' | 'floor';
}

function variants(): Variant[] {
  const out: Variant[] = values.variant.map((v) => {
    const i = v.indexOf('=');
    return i < 0 ? { name: v, env: {} } : { name: v.slice(0, i), cli: v.slice(i + 1) || undefined, env: {} };
  });
  if (out.length === 0) out.push({ name: 'ours', env: {} });
  if (values.snyk) out.push({ name: 'snyk-broker', env: {}, kind: 'snyk-broker' });
  if (values.floor) out.push({ name: 'floor', env: {}, kind: 'floor' });
  if (values.floor) out.push({ name: 'floor (tunnel answers)', env: { FLOOR_ANSWERS: 'tunnel' }, kind: 'floor' });
  for (const e of values.env) {
    const [name, kv] = [e.slice(0, e.indexOf(':')), e.slice(e.indexOf(':') + 1)];
    const v = out.find((x) => x.name === name);
    if (!v) throw new Error(`--env ${e}: no variant named ${name}`);
    v.env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
  }
  for (const e of values['server-env']) {
    const [name, kv] = [e.slice(0, e.indexOf(':')), e.slice(e.indexOf(':') + 1)];
    const v = out.find((x) => x.name === name);
    if (!v) throw new Error(`--server-env ${e}: no variant named ${name}`);
    (v.serverEnv ??= {})[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
  }
  return out;
}

/** CPU time (user + system, all threads) a process has used so far, in ms (from /proc). */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 (1-based) of the whole line: 11 and 12 after the name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS;
}
const TICKS = 100;

/** strace -c -f on a pid until stopped; returns the total syscall count. */
function straceCount(pid: number): { stop(): Promise<{ calls: number; top: string }> } {
  const child = spawn('strace', ['-c', '-f', '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return {
    stop: () =>
      new Promise((resolve) => {
        child.on('exit', () => {
          // Rows: % time, seconds, usecs/call, calls, [errors], syscall.
          const rows = err.split('\n').filter((l) => /^\s*\d+\.\d+\s/.test(l)).map((l) => l.trim().split(/\s+/));
          const calls = rows.filter((p) => p[p.length - 1] !== 'total').map((p) => ({ name: p[p.length - 1]!, n: Number(p[3]) }));
          calls.sort((a, b) => b.n - a.n);
          resolve({ calls: calls.reduce((a, c) => a + c.n, 0), top: calls.slice(0, 6).map((c) => `${c.name}:${c.n}`).join(' ') });
        });
        child.kill('SIGINT');
      }),
  };
}

async function main() {
  await ensureWrk();
  const list = variants();
  const runs = Number(values.runs);
  const durationMs = Number(values.duration);
  const origin = await startBenchOrigin();
  const systems: Array<{ v: Variant; s: System; idle: { c: number | null; s: number | null } }> = [];
  try {
    for (const v of list) {
      const s = await brokerPair(v.kind ?? 'ours', origin.url, { cli: v.cli, env: v.env, serverEnv: v.serverEnv, name: v.name });
      systems.push({ v, s, idle: { c: s.client ? await rssMiB(s.client.pid) : null, s: s.server ? await rssMiB(s.server.pid) : null } });
    }
    const results = new Map<string, LoadResult[]>(list.map((v) => [v.name, []]));
    const cpu = new Map<string, Array<{ c: number; s: number }>>(list.map((v) => [v.name, []]));
    const rssAfterRun = new Map<string, Array<{ c: number; s: number }>>(list.map((v) => [v.name, []]));
    // --duration 0: no small-request runs (large downloads only).
    for (let i = 0; i < (durationMs > 0 ? runs : 0); i++) {
      // Alternate the order too, so no variant always runs right after the same other one.
      const order = i % 2 === 0 ? systems : [...systems].reverse();
      for (const { v, s } of order) {
        const c0 = await cpuMs(s.client!.pid);
        const s0 = await cpuMs(s.server!.pid);
        const r = await wrkClosedLoop(`${s.platform}${values.path}`, { connections: 32, durationMs, postBytes: Number(values['post-bytes']) });
        // CPU per request is far less sensitive to the machine's other load than req/s.
        const perReq = { c: ((await cpuMs(s.client!.pid)) - c0) * 1000 / r.requests, s: ((await cpuMs(s.server!.pid)) - s0) * 1000 / r.requests };
        results.get(v.name)!.push(r);
        cpu.get(v.name)!.push(perReq);
        // RSS right after the variant's own run: the others' runs are idle time for it, in which
        // the idle collection gives memory back, so a reading after all runs would flatter it.
        rssAfterRun.get(v.name)!.push({ c: await rssMiB(s.client!.pid), s: await rssMiB(s.server!.pid) });
        log(`run ${i + 1} ${v.name}: ${fmt(r.rps, 0)} req/s p50 ${fmt(r.p50)} p99 ${fmt(r.p99)} errors ${r.errors}; CPU µs/req client ${fmt(perReq.c, 0)} server ${fmt(perReq.s, 0)}`);
      }
    }
    const tables: string[][][] = [];
    let rows = [['variant', 'req/s median', 'all runs', 'p50', 'p99', 'errors', 'client RSS idle/after', 'server RSS idle/after', 'CPU µs/req client', 'server', ...(Number(values.settle) > 0 ? ['RSS settled client/server'] : [])]];
    // Medians of the readings right after each of the variant's runs (the last reading when none).
    const after = new Map<string, { c: number | null; s: number | null }>();
    for (const { v, s } of systems) {
      const taken = rssAfterRun.get(v.name)!;
      after.set(v.name, taken.length ? { c: median(taken.map((x) => x.c)), s: median(taken.map((x) => x.s)) } : { c: s.client ? await rssMiB(s.client.pid) : null, s: s.server ? await rssMiB(s.server.pid) : null });
    }
    const settled = new Map<string, string>();
    if (Number(values.settle) > 0) {
      await new Promise((r) => setTimeout(r, Number(values.settle)));
      for (const { v, s } of systems) settled.set(v.name, `${s.client ? fmt(await rssMiB(s.client.pid)) : '-'}/${s.server ? fmt(await rssMiB(s.server.pid)) : '-'}`);
    }
    for (const { v, s, idle } of systems) {
      const rs = results.get(v.name)!;
      rows.push([
        v.name,
        fmt(median(rs.map((r) => r.rps)), 0),
        rs.map((r) => fmt(r.rps, 0)).join(','),
        fmt(median(rs.map((r) => r.p50))),
        fmt(median(rs.map((r) => r.p99))),
        String(rs.reduce((a, r) => a + r.errors, 0)),
        `${fmt(idle.c)}/${s.client ? fmt(after.get(v.name)!.c) : '-'}`,
        `${fmt(idle.s)}/${s.server ? fmt(after.get(v.name)!.s) : '-'}`,
        fmt(median(cpu.get(v.name)!.map((x) => x.c)), 0),
        fmt(median(cpu.get(v.name)!.map((x) => x.s)), 0),
        ...(settled.has(v.name) ? [settled.get(v.name)!] : []),
      ]);
    }
    if (values.strace) {
      tables.push(rows);
      rows = [];
      rows.push(['strace (one run)', 'req/s', 'client syscalls/req', 'server syscalls/req', 'client top', 'server top']);
      for (const { v, s } of systems) {
        const c = straceCount(s.client!.pid);
        const sv = straceCount(s.server!.pid);
        await new Promise((r) => setTimeout(r, 500));
        const r = await wrkClosedLoop(`${s.platform}${values.path}`, { connections: 32, durationMs: Math.min(durationMs, 5000) });
        const [cc, sc] = await Promise.all([c.stop(), sv.stop()]);
        const per = (t: string) => t.split(' ').map((x) => { const [n, c] = x.split(':'); return `${n}:${fmt(Number(c) / r.requests, 2)}`; }).join(' ');
        rows.push([v.name, fmt(r.rps, 0), fmt(cc.calls / r.requests, 2), fmt(sc.calls / r.requests, 2), per(cc.top), per(sc.top)]);
      }
    }
    const large = Number(values.large);
    if (large > 0) {
      tables.push(rows);
      rows = [];
      rows.push(['large', 'MB/s median', 'all runs', 'client RSS growth MiB', 'CPU µs/MiB client', 'server']);
      const mb = new Map<string, number[]>(list.map((v) => [v.name, []]));
      const growth = new Map<string, number[]>(list.map((v) => [v.name, []]));
      const cpuLarge = new Map<string, Array<{ c: number; s: number }>>(list.map((v) => [v.name, []]));
      for (let i = 0; i < runs; i++) {
        for (const { v, s } of i % 2 === 0 ? systems : [...systems].reverse()) {
          const u = new URL(s.platform);
          const before = await rssMiB(s.client!.pid);
          const sampler = sampleRss(s.client!.pid);
          const c0 = await cpuMs(s.client!.pid);
          const s0 = await cpuMs(s.server!.pid);
          const d = await download({ origin: u.origin, path: `${u.pathname}/stream/${large}` });
          // CPU per MiB moved: like µs/req above, less sensitive to the machine's other load than MB/s.
          const mib = large / 1024 / 1024;
          const perMiB = { c: ((await cpuMs(s.client!.pid)) - c0) * 1000 / mib, s: ((await cpuMs(s.server!.pid)) - s0) * 1000 / mib };
          const peak = await sampler.stop();
          if (d.bytes !== large) throw new Error(`${v.name}: truncated at ${d.bytes}`);
          mb.get(v.name)!.push(d.mbPerSecond);
          growth.get(v.name)!.push(peak - before);
          cpuLarge.get(v.name)!.push(perMiB);
          log(`large ${i + 1} ${v.name}: ${fmt(d.mbPerSecond, 0)} MB/s, client RSS +${fmt(peak - before)} MiB; CPU µs/MiB client ${fmt(perMiB.c, 0)} server ${fmt(perMiB.s, 0)}`);
        }
      }
      for (const v of list) {
        const c = cpuLarge.get(v.name)!;
        rows.push([v.name, fmt(median(mb.get(v.name)!), 0), mb.get(v.name)!.map((x) => fmt(x, 0)).join(','), fmt(median(growth.get(v.name)!)), fmt(median(c.map((x) => x.c)), 0), fmt(median(c.map((x) => x.s)), 0)]);
      }
    }
    tables.push(rows);
    for (const t of tables) {
      const widths = t[0]!.map((_, i) => Math.max(...t.map((r) => (r[i] ?? '').length)));
      process.stdout.write(`${t.map((r) => r.map((c, i) => (c ?? '').padEnd(widths[i]!)).join('  ')).join('\n')}\n\n`);
    }
  } finally {
    for (const { s } of systems) await s.stop();
    await origin.close();
  }
}

await main();
