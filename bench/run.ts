import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fixedRate, download, type LoadResult } from './load.js';
import { ensureWrk, wrkClosedLoop } from './wrk.js';
import { rssAnonMiB, rssMiB, sampleRss } from './rss.js';
import { startBenchOrigin } from './origin.js';
import { brokerPair, describeRun, directSystem, GITHUB_COM_PATH, probeCounters, shippedEnv, type System } from './systems.js';
import { haScenario, type HaResult } from './ha.js';
import { REPO_ROOT } from '../test/support/paths.js';
import { execFileSync } from 'node:child_process';

/**
 * `npm run bench`: ours, the real snyk-broker and the direct path, side by side in one run on
 * 127.0.0.1, with the floor (floor-relay.ts) as a yardstick for what the targets ask. Each
 * measure is repeated (BENCH_REPEATS, default 5) and the median is reported.
 * This is a benchmark, not a test: it prints numbers and ratios and asserts nothing.
 */
// 5: with 3, one unlucky run of two (this machine is shared) was enough to move a median.
const REPEATS = Number(process.env.BENCH_REPEATS ?? 5);
const DURATION = Number(process.env.BENCH_DURATION_MS ?? 10_000);
const LARGE = Number(process.env.BENCH_LARGE_BYTES ?? 256 * 1024 * 1024);
/** Idle time after scenario 1 before the settled memory is read (two windows of our idle collection, and more). */
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 12_000);
const UPLOAD_BYTES = 64 * 1024;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

function medianLoad(runs: LoadResult[]): LoadResult {
  const keys = ['requests', 'errors', 'durationMs', 'rps', 'p50', 'p99', 'max'] as const;
  return Object.fromEntries(keys.map((k) => [k, median(runs.map((r) => r[k]))])) as unknown as LoadResult;
}

interface SystemResult {
  s1: LoadResult;
  /** Every run's requests/s, in the order run (the median is in s1). */
  s1AllRps: number[];
  /** Our server only: tunnels taken for hung and requests hedged during all scenario-1 runs (a healthy client: 0). */
  s1Probes?: { probeMisses: number; hedges: number } | null;
  s2: LoadResult;
  s3: { mbPerSecond: number; clientRssGrowthMiB: number | null; serverRssGrowthMiB: number | null };
  s4: LoadResult;
  s5: {
    clientIdleMiB: number | null;
    serverIdleMiB: number | null;
    clientAfterLoadMiB: number | null;
    serverAfterLoadMiB: number | null;
    /** Private memory (RssAnon): RSS without the shared, file-backed pages of the node binary. */
    clientAfterLoadAnonMiB: number | null;
    serverAfterLoadAnonMiB: number | null;
    /** After every system has been idle at least SETTLE_MS past its last scenario-1 run: what a process gives back once the load is over. */
    clientSettledMiB: number | null;
    serverSettledMiB: number | null;
  };
}

/** Scenarios 1 and 5 only (a second configuration of ours: the run stays short). */
type Partial15 = Pick<SystemResult, 's1' | 's1AllRps' | 's1Probes' | 's5'> & Partial<Pick<SystemResult, 's3'>>;

/** A running system and what is measured on it: all scenarios, or only 1 and 5. */
interface Entry {
  name: string;
  system: System;
  only15: boolean;
  /** Scenario 3 as well (ours with its defaults: large answers stream over the tunnel). */
  withS3?: boolean;
  /** The path scenario 1 requests (default /small). */
  s1Path?: string;
}

const targetOf = (system: System) => ({ origin: new URL(system.platform).origin, path: new URL(system.platform).pathname.replace(/\/$/, '') });
const rss = async (pid?: number) => (pid ? rssMiB(pid) : null);

/**
 * Runs one measure REPEATS times on every entry, interleaved (A, B, C, then C, B, A...) so the
 * machine's load, which drifts over minutes here, weighs on every system alike and the ratios
 * compare runs made side by side.
 */
async function interleaved<T>(entries: Entry[], what: string, fn: (e: Entry) => Promise<T>): Promise<Map<string, T[]>> {
  log(`  ${what} x${REPEATS}, interleaved: ${entries.map((e) => e.name).join(', ')}`);
  const out = new Map<string, T[]>(entries.map((e) => [e.name, []]));
  for (let i = 0; i < REPEATS; i++) {
    for (const e of i % 2 === 0 ? entries : [...entries].reverse()) out.get(e.name)!.push(await fn(e));
  }
  return out;
}

async function measureAll(entries: Entry[]): Promise<Record<string, SystemResult | Partial15>> {
  const idle = new Map<string, { client: number | null; server: number | null }>();
  for (const { name, system } of entries) idle.set(name, { client: await rss(system.client?.pid), server: await rss(system.server?.pid) });
  const url = (system: System, p: string) => `${targetOf(system).origin}${targetOf(system).path}${p}`;
  const at = (system: System, p: string) => ({ origin: targetOf(system).origin, path: `${targetOf(system).path}${p}` });
  // Memory "after scenario 1" is taken right after each of the system's own runs (median), not
  // after the others ran: an idle process gives memory back over time.
  const s1 = await interleaved(entries, `scenario 1 (wrk closed loop, 32 connections, ${DURATION} ms)`, async ({ system, s1Path }) => {
    const probesBefore = await probeCounters(system);
    const load = await wrkClosedLoop(url(system, s1Path ?? '/small'), { connections: 32, durationMs: DURATION });
    const probesAfter = await probeCounters(system);
    const c = system.client;
    const sv = system.server;
    return {
      load,
      probes: probesBefore && probesAfter ? { probeMisses: probesAfter.probeMisses - probesBefore.probeMisses, hedges: probesAfter.hedges - probesBefore.hedges } : null,
      client: await rss(c?.pid),
      server: await rss(sv?.pid),
      clientAnon: c ? await rssAnonMiB(c.pid) : null,
      serverAnon: sv ? await rssAnonMiB(sv.pid) : null,
    };
  });
  // Settled memory: every process idle for SETTLE_MS after scenario 1 (the last system's run
  // ended then; the others' earlier), so V8's own memory reducer (snyk-broker's Node 20) and our
  // idle collection have had their chance.
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const settled = new Map<string, { client: number | null; server: number | null }>();
  for (const { name, system } of entries) settled.set(name, { client: await rss(system.client?.pid), server: await rss(system.server?.pid) });
  const full = entries.filter((e) => !e.only15);
  const s2 = await interleaved(full, `scenario 2 (500 req/s for ${DURATION} ms)`, ({ system }) => fixedRate(at(system, '/small'), { rate: 500, durationMs: DURATION }));
  const s3 = await interleaved(entries.filter((e) => !e.only15 || e.withS3), `scenario 3 (${LARGE / 1024 / 1024} MiB response)`, async ({ name, system }) => {
    const before = await rss(system.client?.pid);
    const serverBefore = await rss(system.server?.pid);
    const sampler = system.client ? sampleRss(system.client.pid) : undefined;
    const serverSampler = system.server ? sampleRss(system.server.pid) : undefined;
    const d = await download(at(system, `/stream/${LARGE}`));
    const peak = sampler ? await sampler.stop() : null;
    const serverPeak = serverSampler ? await serverSampler.stop() : null;
    if (d.bytes !== LARGE) throw new Error(`${name}: large response truncated at ${d.bytes} of ${LARGE} bytes (status ${d.status})`);
    return {
      mbPerSecond: d.mbPerSecond,
      growth: peak !== null && before !== null ? peak - before : null,
      serverGrowth: serverPeak !== null && serverBefore !== null ? serverPeak - serverBefore : null,
    };
  });
  const s4 = await interleaved(full, 'scenario 4 (32 concurrent 64 KiB uploads)', ({ system }) =>
    wrkClosedLoop(url(system, '/upload'), { connections: 32, durationMs: DURATION, postBytes: UPLOAD_BYTES }),
  );
  const medianOrNull = (xs: Array<number | null>) => (xs.some((x) => x === null) ? null : median(xs as number[]));
  const results: Record<string, SystemResult | Partial15> = {};
  const s3Of = (name: string) => {
    const runs = s3.get(name)!;
    return { mbPerSecond: median(runs.map((r) => r.mbPerSecond)), clientRssGrowthMiB: medianOrNull(runs.map((r) => r.growth)), serverRssGrowthMiB: medianOrNull(runs.map((r) => r.serverGrowth)) };
  };
  for (const { name, only15, withS3 } of entries) {
    const runs = s1.get(name)!;
    const s5 = {
      clientIdleMiB: idle.get(name)!.client,
      serverIdleMiB: idle.get(name)!.server,
      clientAfterLoadMiB: medianOrNull(runs.map((r) => r.client)),
      serverAfterLoadMiB: medianOrNull(runs.map((r) => r.server)),
      clientAfterLoadAnonMiB: medianOrNull(runs.map((r) => r.clientAnon)),
      serverAfterLoadAnonMiB: medianOrNull(runs.map((r) => r.serverAnon)),
      clientSettledMiB: settled.get(name)!.client,
      serverSettledMiB: settled.get(name)!.server,
    };
    const s1m = medianLoad(runs.map((r) => r.load));
    const s1AllRps = runs.map((r) => Math.round(r.load.rps));
    const s1Probes = runs.every((r) => r.probes) ? { probeMisses: runs.reduce((n, r) => n + r.probes!.probeMisses, 0), hedges: runs.reduce((n, r) => n + r.probes!.hedges, 0) } : null;
    if (s1Probes) log(`${name}: scenario 1, ${runs.length} runs: ${s1Probes.probeMisses} tunnels taken for hung, ${s1Probes.hedges} requests hedged`);
    if (only15) {
      results[name] = { s1: s1m, s1AllRps, s1Probes, s5, ...(withS3 ? { s3: s3Of(name) } : {}) };
      continue;
    }
    results[name] = {
      s1: s1m,
      s1AllRps,
      s1Probes,
      s2: medianLoad(s2.get(name)!),
      s3: s3Of(name),
      s4: medianLoad(s4.get(name)!),
      s5,
    };
  }
  return results;
}

/** The short commit measured, with "-dirty" when the working tree has changes (unknown: no git). */
function gitCommit(): string {
  try {
    const hash = execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() !== '';
    return dirty ? `${hash}-dirty` : hash;
  } catch {
    return 'unknown';
  }
}

function log(line: string) {
  process.stderr.write(`${line}\n`);
}

const fmt = (n: number | null | undefined, digits = 1) => (n === null || n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));

async function main() {
  await ensureWrk();
  const origin = await startBenchOrigin();
  const results: Record<string, SystemResult> = {};
  // Ours runs as the image runs it (the Dockerfile's NODE_OPTIONS / MALLOC_ARENA_MAX); when
  // that sets anything, ours with Node's defaults is measured too (scenarios 1 and 5).
  const shipped = shippedEnv();
  const withDefaults = Object.keys(shipped).length > 0;
  // "ours" keeps to the snyk-compatible wire path (every answer by POST /response-data), as the
  // targets ask; "ours (tunnel answers)" is our client and server with their own faster path
  // on (the default between them), measured separately.
  const compatible = { BROKER_CLIENT_TUNNEL_ANSWERS: 'false' };
  const envOf: Record<string, Record<string, string>> = {
    'snyk-broker': {},
    ours: { ...shipped, ...compatible },
    'ours (tunnel answers)': shipped,
    'ours (tunnel streams)': { ...shipped, BROKER_CLIENT_TUNNEL_STREAMS: 'true' },
    'ours (defaults)': compatible,
    'ours (github-com rules)': { ...shipped, ...compatible },
    floor: shipped,
    'floor (tunnel answers)': { ...shipped, FLOOR_ANSWERS: 'tunnel' },
  };
  const howRun: Record<string, string> = {
    direct: 'the load generator calls the origin itself',
    'snyk-broker': `${describeRun('snyk-broker', {})}, as the package ships`,
    ours: `${describeRun('ours', envOf.ours!)}${withDefaults ? ' (NODE_OPTIONS etc. as the Dockerfile sets)' : ''}`,
    'ours (tunnel answers)': `${describeRun('ours', envOf['ours (tunnel answers)']!)}: ours as it runs by default with our server: small answers as one binary frame on the tunnel, large ones by POST (scenarios 1, 3, 5)`,
    'ours (tunnel streams)': `${describeRun('ours', envOf['ours (tunnel streams)']!)}: the same, and large answers streamed over the tunnel as binary frames with credit windows (scenarios 1, 3, 5)`,
    'ours (github-com rules)': `as ours, but the client has a github-com user's settings (BROKER_SCM_TYPE=github-com, GITHUB_TOKEN, ACCEPT_CODE=true; the GitHub hosts are the bench origin): Snyk's github-com template with ACCEPT_CODE's rules added (323 private rules); scenario 1 requests GET ${GITHUB_COM_PATH}, let through by the last GET rule`,
    floor: `${describeRun('ours', envOf.floor!)}: bench/floor-relay.ts, the least a Node program with the same parts does on the compatible path (a yardstick, not a broker)`,
    'floor (tunnel answers)': 'the same, small answers as binary frames on the tunnel',
    'ours, HA': 'dispatcher, 2 servers, 4 clients, Node defaults, tunnel answers on (scenario 6 has no snyk-broker counterpart)',
  };
  if (withDefaults) howRun['ours (defaults)'] = describeRun('ours', envOf['ours (defaults)']!);
  let oursDefaults: Partial15 | undefined;
  let oursTunnel: Partial15 | undefined;
  let oursStreams: Partial15 | undefined;
  let floorTunnel: Partial15 | undefined;
  let oursGithubCom: Partial15 | undefined;
  try {
    // Every system runs at once (idle ones cost next to nothing), so the measures can alternate.
    const entries: Entry[] = [];
    try {
      const names = ['direct', 'snyk-broker', 'ours', 'ours (github-com rules)', 'ours (tunnel answers)', 'ours (tunnel streams)', ...(withDefaults ? ['ours (defaults)' as const] : []), 'floor', 'floor (tunnel answers)'] as const;
      for (const name of names) {
        log(`== ${name}: ${howRun[name]}`);
        const kind = name === 'snyk-broker' ? 'snyk-broker' : name.startsWith('floor') ? 'floor' : 'ours';
        const githubComRules = name === 'ours (github-com rules)';
        const system = name === 'direct' ? directSystem(origin.url) : await brokerPair(kind, origin.url, { env: envOf[name]!, name, githubComRules });
        const only15 = name === 'ours (tunnel answers)' || name === 'ours (tunnel streams)' || name === 'ours (defaults)' || name === 'floor (tunnel answers)' || githubComRules;
        entries.push({ name, system, only15, withS3: name === 'ours (tunnel answers)' || name === 'ours (tunnel streams)', ...(githubComRules ? { s1Path: GITHUB_COM_PATH } : {}) });
      }
      const measured = await measureAll(entries);
      for (const [name, r] of Object.entries(measured)) {
        if (name === 'ours (defaults)') oursDefaults = r;
        else if (name === 'ours (tunnel answers)') oursTunnel = r;
        else if (name === 'ours (tunnel streams)') oursStreams = r;
        else if (name === 'floor (tunnel answers)') floorTunnel = r;
        else if (name === 'ours (github-com rules)') oursGithubCom = r;
        else results[name] = r as SystemResult;
      }
    } finally {
      // Stopped before scenario 6, which starts its own servers and clients.
      for (const { system } of entries) await system.stop();
    }
    let ha: HaResult | { error: string };
    log('== ours, HA (scenario 6)');
    try {
      ha = await haScenario(origin, DURATION);
    } catch (err) {
      ha = { error: (err as Error).message };
    }
    const d = results.direct!;
    const s = results['snyk-broker']!;
    const o = results.ours!;
    const f = results.floor!;
    // A ratio of two measures, either of which may be missing (NaN then).
    const div = (a: number | null | undefined, b: number | null | undefined) => (a ?? NaN) / (b ?? NaN);
    const ratios = {
      s1ThroughputOursOverSnyk: o.s1.rps / s.s1.rps,
      s1ThroughputOursOverDirect: o.s1.rps / d.s1.rps,
      // Ours against the floor (the least a Node program with the same parts does), per measure.
      s1ThroughputOursOverFloor: o.s1.rps / f.s1.rps,
      s2P99OursOverFloor: o.s2.p99 / f.s2.p99,
      s3MbpsOursOverFloor: o.s3.mbPerSecond / f.s3.mbPerSecond,
      s4ThroughputOursOverFloor: o.s4.rps / f.s4.rps,
      s5ClientRssOursOverFloor: div(o.s5.clientAfterLoadMiB, f.s5.clientAfterLoadMiB),
      // Snyk's github-com template (ACCEPT_CODE) instead of a one-rule file: issue 23 asks >= 0.8.
      ...(oursGithubCom
        ? {
            s1ThroughputOursGithubComOverOurs: oursGithubCom.s1.rps / o.s1.rps,
            s1ThroughputOursGithubComOverSnyk: oursGithubCom.s1.rps / s.s1.rps,
            s1ThroughputOursGithubComOverFloor: oursGithubCom.s1.rps / f.s1.rps,
          }
        : {}),
      s2P99OursOverSnyk: o.s2.p99 / s.s2.p99,
      s3MbpsOursOverSnyk: o.s3.mbPerSecond / s.s3.mbPerSecond,
      ...(oursStreams?.s3 ? { s3MbpsOursStreamsOverSnyk: oursStreams.s3.mbPerSecond / s.s3.mbPerSecond, s3MbpsOursStreamsOverOursTunnel: oursStreams.s3.mbPerSecond / (oursTunnel?.s3?.mbPerSecond ?? NaN) } : {}),
      ...(oursTunnel?.s3 ? { s3MbpsOursTunnelOverSnyk: oursTunnel.s3.mbPerSecond / s.s3.mbPerSecond, s3MbpsOursTunnelOverDirect: oursTunnel.s3.mbPerSecond / d.s3.mbPerSecond } : {}),
      s4ThroughputOursOverSnyk: o.s4.rps / s.s4.rps,
      s5ClientRssOursOverSnyk: div(o.s5.clientAfterLoadMiB, s.s5.clientAfterLoadMiB),
      s5ClientPrivateRssOursOverSnyk: div(o.s5.clientAfterLoadAnonMiB, s.s5.clientAfterLoadAnonMiB),
      s5ServerRssOursOverSnyk: div(o.s5.serverAfterLoadMiB, s.s5.serverAfterLoadMiB),
      s5ClientSettledRssOursOverSnyk: div(o.s5.clientSettledMiB, s.s5.clientSettledMiB),
      s5ServerSettledRssOursOverSnyk: div(o.s5.serverSettledMiB, s.s5.serverSettledMiB),
      ...(oursTunnel ? { s1ThroughputOursTunnelAnswersOverSnyk: oursTunnel.s1.rps / s.s1.rps } : {}),
      // The floor's own ratios: what no program built on these parts would beat on this machine.
      s1ThroughputFloorOverSnyk: f.s1.rps / s.s1.rps,
      s3MbpsFloorOverSnyk: f.s3.mbPerSecond / s.s3.mbPerSecond,
      s5ClientRssFloorOverSnyk: div(f.s5.clientAfterLoadMiB, s.s5.clientAfterLoadMiB),
      ...(floorTunnel ? { s1ThroughputFloorTunnelAnswersOverSnyk: floorTunnel.s1.rps / s.s1.rps } : {}),
      ...(oursDefaults
        ? {
            s1ThroughputOursDefaultsOverSnyk: oursDefaults.s1.rps / s.s1.rps,
            s5ClientRssOursDefaultsOverSnyk: div(oursDefaults.s5.clientAfterLoadMiB, s.s5.clientAfterLoadMiB),
          }
        : {}),
    };
    const ratio = (a: number | null | undefined, b: number | null | undefined) => fmt(div(a, b), 2);
    // Each row: metric, direct, snyk-broker, ours, ours/snyk, ours/floor, floor, floor/snyk.
    const rows = [
      ['metric', 'direct', 'snyk-broker', 'ours', 'ours/snyk', 'ours/floor', 'floor', 'floor/snyk'],
      ['1 small req/s (32 conc)', fmt(d.s1.rps, 0), fmt(s.s1.rps, 0), fmt(o.s1.rps, 0), fmt(ratios.s1ThroughputOursOverSnyk, 2), fmt(ratios.s1ThroughputOursOverFloor, 2), fmt(f.s1.rps, 0), fmt(ratios.s1ThroughputFloorOverSnyk, 2)],
      ['1 p50 / p99 ms', `${fmt(d.s1.p50)} / ${fmt(d.s1.p99)}`, `${fmt(s.s1.p50)} / ${fmt(s.s1.p99)}`, `${fmt(o.s1.p50)} / ${fmt(o.s1.p99)}`, '', '', `${fmt(f.s1.p50)} / ${fmt(f.s1.p99)}`, ''],
      ['1 errors', fmt(d.s1.errors, 0), fmt(s.s1.errors, 0), fmt(o.s1.errors, 0), '', '', fmt(f.s1.errors, 0), ''],
      ['2 500 req/s p50 ms', fmt(d.s2.p50), fmt(s.s2.p50), fmt(o.s2.p50), ratio(o.s2.p50, s.s2.p50), ratio(o.s2.p50, f.s2.p50), fmt(f.s2.p50), ratio(f.s2.p50, s.s2.p50)],
      ['2 p99 / max ms', `${fmt(d.s2.p99)} / ${fmt(d.s2.max)}`, `${fmt(s.s2.p99)} / ${fmt(s.s2.max)}`, `${fmt(o.s2.p99)} / ${fmt(o.s2.max)}`, fmt(ratios.s2P99OursOverSnyk, 2), ratio(o.s2.p99, f.s2.p99), `${fmt(f.s2.p99)} / ${fmt(f.s2.max)}`, ratio(f.s2.p99, s.s2.p99)],
      ['3 large response MB/s', fmt(d.s3.mbPerSecond, 0), fmt(s.s3.mbPerSecond, 0), fmt(o.s3.mbPerSecond, 0), fmt(ratios.s3MbpsOursOverSnyk, 2), fmt(ratios.s3MbpsOursOverFloor, 2), fmt(f.s3.mbPerSecond, 0), fmt(ratios.s3MbpsFloorOverSnyk, 2)],
      ['3 client RSS growth MiB', '-', fmt(s.s3.clientRssGrowthMiB), fmt(o.s3.clientRssGrowthMiB), '', '', fmt(f.s3.clientRssGrowthMiB), ''],
      ['3 server RSS growth MiB', '-', fmt(s.s3.serverRssGrowthMiB), fmt(o.s3.serverRssGrowthMiB), '', '', fmt(f.s3.serverRssGrowthMiB), ''],
      ['4 64 KiB uploads req/s', fmt(d.s4.rps, 0), fmt(s.s4.rps, 0), fmt(o.s4.rps, 0), fmt(ratios.s4ThroughputOursOverSnyk, 2), fmt(ratios.s4ThroughputOursOverFloor, 2), fmt(f.s4.rps, 0), ratio(f.s4.rps, s.s4.rps)],
      ['5 client RSS idle MiB', '-', fmt(s.s5.clientIdleMiB), fmt(o.s5.clientIdleMiB), '', '', fmt(f.s5.clientIdleMiB), ''],
      ['5 client RSS after load', '-', fmt(s.s5.clientAfterLoadMiB), fmt(o.s5.clientAfterLoadMiB), fmt(ratios.s5ClientRssOursOverSnyk, 2), fmt(ratios.s5ClientRssOursOverFloor, 2), fmt(f.s5.clientAfterLoadMiB), fmt(ratios.s5ClientRssFloorOverSnyk, 2)],
      ['5 client private RSS after', '-', fmt(s.s5.clientAfterLoadAnonMiB), fmt(o.s5.clientAfterLoadAnonMiB), fmt(ratios.s5ClientPrivateRssOursOverSnyk, 2), ratio(o.s5.clientAfterLoadAnonMiB, f.s5.clientAfterLoadAnonMiB), fmt(f.s5.clientAfterLoadAnonMiB), ratio(f.s5.clientAfterLoadAnonMiB, s.s5.clientAfterLoadAnonMiB)],
      ['5 server RSS idle / after', '-', `${fmt(s.s5.serverIdleMiB)} / ${fmt(s.s5.serverAfterLoadMiB)}`, `${fmt(o.s5.serverIdleMiB)} / ${fmt(o.s5.serverAfterLoadMiB)}`, fmt(ratios.s5ServerRssOursOverSnyk, 2), '', `${fmt(f.s5.serverIdleMiB)} / ${fmt(f.s5.serverAfterLoadMiB)}`, ''],
      ['5 server private RSS after', '-', fmt(s.s5.serverAfterLoadAnonMiB), fmt(o.s5.serverAfterLoadAnonMiB), '', ratio(o.s5.serverAfterLoadAnonMiB, f.s5.serverAfterLoadAnonMiB), fmt(f.s5.serverAfterLoadAnonMiB), ''],
      [`5 client / server RSS settled (${SETTLE_MS / 1000} s idle)`, '-', `${fmt(s.s5.clientSettledMiB)} / ${fmt(s.s5.serverSettledMiB)}`, `${fmt(o.s5.clientSettledMiB)} / ${fmt(o.s5.serverSettledMiB)}`, `${fmt(ratios.s5ClientSettledRssOursOverSnyk, 2)} / ${fmt(ratios.s5ServerSettledRssOursOverSnyk, 2)}`, `${ratio(o.s5.clientSettledMiB, f.s5.clientSettledMiB)} / ${ratio(o.s5.serverSettledMiB, f.s5.serverSettledMiB)}`, `${fmt(f.s5.clientSettledMiB)} / ${fmt(f.s5.serverSettledMiB)}`, ''],
    ];
    if (oursGithubCom) {
      const og = oursGithubCom;
      // Its floor is the floor on /small: the floor relays without rules, so it is the same yardstick.
      rows.push(['1 small req/s, ours (github-com rules)', '-', fmt(s.s1.rps, 0), fmt(og.s1.rps, 0), ratio(og.s1.rps, s.s1.rps), ratio(og.s1.rps, f.s1.rps), fmt(f.s1.rps, 0), '']);
      rows.push(['1 github-com rules / one rule (ours)', '-', '-', fmt(ratios.s1ThroughputOursGithubComOverOurs, 2), '', '', '', '']);
      // Non-2xx answers count as errors: a refused request would show here.
      rows.push(['1 errors, ours (github-com rules)', '-', '-', fmt(og.s1.errors, 0), '', '', '', '']);
      rows.push(['1 p50 / p99 ms, ours (github-com rules)', '-', `${fmt(s.s1.p50)} / ${fmt(s.s1.p99)}`, `${fmt(og.s1.p50)} / ${fmt(og.s1.p99)}`, '', '', `${fmt(f.s1.p50)} / ${fmt(f.s1.p99)}`, '']);
      rows.push(['5 client RSS after, ours (github-com rules)', '-', fmt(s.s5.clientAfterLoadMiB), fmt(og.s5.clientAfterLoadMiB), ratio(og.s5.clientAfterLoadMiB, s.s5.clientAfterLoadMiB), ratio(og.s5.clientAfterLoadMiB, f.s5.clientAfterLoadMiB), fmt(f.s5.clientAfterLoadMiB), '']);
    }
    if (oursTunnel) {
      const ot = oursTunnel;
      const ft = floorTunnel;
      rows.push(['1 small req/s, ours (tunnel answers)', '-', fmt(s.s1.rps, 0), fmt(ot.s1.rps, 0), fmt(ot.s1.rps / s.s1.rps, 2), ratio(ot.s1.rps, ft?.s1.rps), fmt(ft?.s1.rps, 0), ratio(ft?.s1.rps, s.s1.rps)]);
      rows.push(['1 p50 / p99 ms, ours (tunnel answers)', '-', `${fmt(s.s1.p50)} / ${fmt(s.s1.p99)}`, `${fmt(ot.s1.p50)} / ${fmt(ot.s1.p99)}`, '', '', ft ? `${fmt(ft.s1.p50)} / ${fmt(ft.s1.p99)}` : '-', '']);
      if (ot.s3) {
        rows.push(['3 large response MB/s, ours (tunnel answers: large ones by POST)', fmt(d.s3.mbPerSecond, 0), fmt(s.s3.mbPerSecond, 0), fmt(ot.s3.mbPerSecond, 0), ratio(ot.s3.mbPerSecond, s.s3.mbPerSecond), ratio(ot.s3.mbPerSecond, f.s3.mbPerSecond), fmt(f.s3.mbPerSecond, 0), '']);
        rows.push(['3 of direct, ours (tunnel answers)', '-', ratio(s.s3.mbPerSecond, d.s3.mbPerSecond), ratio(ot.s3.mbPerSecond, d.s3.mbPerSecond), '', '', ratio(f.s3.mbPerSecond, d.s3.mbPerSecond), '']);
        rows.push(['3 client / server RSS growth MiB, ours (tunnel answers)', '-', `${fmt(s.s3.clientRssGrowthMiB)} / ${fmt(s.s3.serverRssGrowthMiB)}`, `${fmt(ot.s3.clientRssGrowthMiB)} / ${fmt(ot.s3.serverRssGrowthMiB)}`, '', '', `${fmt(f.s3.clientRssGrowthMiB)} / ${fmt(f.s3.serverRssGrowthMiB)}`, '']);
      }
      const os = oursStreams?.s3;
      if (os) {
        rows.push(['3 large response MB/s, ours (tunnel streams, credit windows)', fmt(d.s3.mbPerSecond, 0), fmt(s.s3.mbPerSecond, 0), fmt(os.mbPerSecond, 0), ratio(os.mbPerSecond, s.s3.mbPerSecond), ratio(os.mbPerSecond, f.s3.mbPerSecond), fmt(f.s3.mbPerSecond, 0), '']);
        rows.push(['3 client / server RSS growth MiB, ours (tunnel streams)', '-', `${fmt(s.s3.clientRssGrowthMiB)} / ${fmt(s.s3.serverRssGrowthMiB)}`, `${fmt(os.clientRssGrowthMiB)} / ${fmt(os.serverRssGrowthMiB)}`, '', '', `${fmt(f.s3.clientRssGrowthMiB)} / ${fmt(f.s3.serverRssGrowthMiB)}`, '']);
      }
      rows.push(['5 client RSS after, ours (tunnel answers)', '-', fmt(s.s5.clientAfterLoadMiB), fmt(ot.s5.clientAfterLoadMiB), ratio(ot.s5.clientAfterLoadMiB, s.s5.clientAfterLoadMiB), ratio(ot.s5.clientAfterLoadMiB, ft?.s5.clientAfterLoadMiB), fmt(ft?.s5.clientAfterLoadMiB), ratio(ft?.s5.clientAfterLoadMiB, s.s5.clientAfterLoadMiB)]);
    }
    if (oursDefaults) {
      const od = oursDefaults;
      rows.push(['1 small req/s, ours (defaults)', '-', fmt(s.s1.rps, 0), fmt(od.s1.rps, 0), fmt(od.s1.rps / s.s1.rps, 2), ratio(od.s1.rps, f.s1.rps)]);
      rows.push(['5 client RSS after, ours (defaults)', '-', fmt(s.s5.clientAfterLoadMiB), fmt(od.s5.clientAfterLoadMiB), ratio(od.s5.clientAfterLoadMiB, s.s5.clientAfterLoadMiB), ratio(od.s5.clientAfterLoadMiB, f.s5.clientAfterLoadMiB)]);
      rows.push(['5 server RSS after, ours (defaults)', '-', fmt(s.s5.serverAfterLoadMiB), fmt(od.s5.serverAfterLoadMiB), '']);
      rows.push(['5 client / server RSS settled, ours (defaults)', '-', `${fmt(s.s5.clientSettledMiB)} / ${fmt(s.s5.serverSettledMiB)}`, `${fmt(od.s5.clientSettledMiB)} / ${fmt(od.s5.serverSettledMiB)}`, `${ratio(od.s5.clientSettledMiB, s.s5.clientSettledMiB)} / ${ratio(od.s5.serverSettledMiB, s.s5.serverSettledMiB)}`]);
    }
    if ('error' in ha) rows.push(['6 HA', '-', '-', `failed: ${ha.error.slice(0, 60)}`, '']);
    else {
      rows.push(['6 HA req/s (2 srv, 4 cli)', '-', '-', fmt(ha.load.rps, 0), '']);
      rows.push(['6 share max/min (alive)', '-', '-', fmt(ha.shareMaxOverMin, 2), '']);
      rows.push(['6 failed after kill -9', '-', '-', fmt(ha.failedAfterKill, 0), '']);
      rows.push(['6 errors back to zero ms', '-', '-', fmt(ha.recoveryMs, 0), '']);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
    const table = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
    const how = Object.entries(howRun).map(([k, v]) => `  ${k}: ${v}`).join('\n');
    process.stdout.write(`\nmedians of ${REPEATS} runs, ${DURATION} ms each, systems interleaved; how each system ran:\n${how}\n\n${table}\n`);
    const out = join(REPO_ROOT, 'bench', 'results');
    await mkdir(out, { recursive: true });
    const date = new Date().toISOString();
    const commit = gitCommit();
    const text = JSON.stringify({ date, commit, node: process.version, howRun, repeats: REPEATS, durationMs: DURATION, largeBytes: LARGE, results, oursTunnel, oursStreams, oursDefaults, floorTunnel, oursGithubCom, ha, ratios }, null, 2);
    // latest.json is not committed; the dated copy is what bench/README.md quotes (commit that one).
    const dated = `${date.slice(0, 10)}-${commit}.json`;
    await writeFile(join(out, 'latest.json'), text);
    await writeFile(join(out, dated), text);
    process.stdout.write(`\nwritten to bench/results/latest.json and bench/results/${dated}\n`);
  } finally {
    await origin.close();
  }
}

await main();
