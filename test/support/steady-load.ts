// Steady mixed platform load for the fault suite: GETs and POSTs at a fixed rate through the
// platform API, each with a unique id (POSTs carry it in a JSON body, so the origin can tell a
// duplicate delivery), each with a deadline: a request not settled by then is a *hung* request.
// Every failure is kept with its status, x-broker-failure reason and error text.
import { randomUUID } from 'node:crypto';
import { request } from 'undici';

/** What the load runs against (HaCluster implements it). */
export interface SteadyLoadTarget {
  /** The platform URL of `path` (e.g. `${shared}/broker/<token>/<path>`). */
  platformUrl(path: string): string;
  /** How many times the origin received each load id (from POST bodies), for duplicate detection. */
  seenIds?(): ReadonlyMap<string, number>;
  /**
   * Cumulative retry counters per process instance (e.g. `server-0#2` → broker_server_relay_retries_total).
   * A restarted instance is a new key, so counters that reset on restart are summed correctly.
   */
  retries?(): Promise<ReadonlyMap<string, number>>;
}

export interface SteadyLoadOptions {
  /** Requests per second (default 50). */
  rate?: number;
  /** Relative weights (default half GET, half POST). */
  mix?: { get: number; post: number };
  /** A request not settled within this is counted as hung and aborted (default 90 s: above the server's 60 s request timeout). */
  deadlineMs?: number;
  /** Path prefix under the platform URL (default `load`). */
  path?: string;
  /** POST body padding in bytes (default 256). */
  postBytes?: number;
}

export type LoadMethod = 'GET' | 'POST';

export interface LoadFailureRecord {
  method: LoadMethod;
  id: string;
  /** ms since the load started. */
  at: number;
  /** HTTP status, 0 when there was no answer (network error). */
  status: number;
  /** x-broker-failure header ('' when absent). */
  reason: string;
  /** Body excerpt or error message. */
  error: string;
  /** x-broker-retry-elsewhere was set. */
  retryElsewhere: boolean;
  /** snyk-request-id of the answer, to find the request in the servers' logs. */
  requestId?: string;
  /** Filled in by report(): the origin received this request (a failed POST may have been applied). */
  seenAtOrigin?: boolean;
}

export interface SteadyLoadReport {
  sent: number;
  ok: number;
  failed: LoadFailureRecord[];
  /** Requests not settled by their deadline. */
  hung: number;
  /** Relay retries counted by the servers during the load (0 when the target has no metrics). */
  retried: number;
  /** POST ids the origin received more than once. */
  duplicatesAtOrigin: number;
  byMethod: Record<LoadMethod, { sent: number; ok: number; failed: number; hung: number }>;
  /** Load duration in ms. */
  durationMs: number;
  /** Slowest settled request, ms. */
  maxLatencyMs: number;
  /** Slowest settled request per method, ms. */
  maxLatencyMsByMethod: Record<LoadMethod, number>;
}

export interface SteadyLoad {
  /** Date.now() when it started (failure `at` values are relative to it). */
  readonly startedAt: number;
  readonly sent: number;
  readonly ok: number;
  /** The report so far (requests in flight are neither ok nor failed). */
  report(): Promise<SteadyLoadReport>;
  /**
   * Sends `n` more requests of `method` at once, counted like the others: consecutive requests
   * reach every target of a round robin, whatever phase the steady interleave is in.
   */
  burst(method: LoadMethod, n: number): void;
  /** Stops sending, waits for the requests in flight (each bounded by its deadline), final report. */
  stop(): Promise<SteadyLoadReport>;
}

export function startSteadyLoad(target: SteadyLoadTarget, options: SteadyLoadOptions = {}): SteadyLoad {
  const rate = options.rate ?? 50;
  const mix = options.mix ?? { get: 1, post: 1 };
  const deadlineMs = options.deadlineMs ?? 90_000;
  const prefix = (options.path ?? 'load').replace(/^\/|\/$/g, '');
  const pad = 'x'.repeat(options.postBytes ?? 256);
  const run = randomUUID().slice(0, 8);
  const started = Date.now();
  const failed: LoadFailureRecord[] = [];
  const inflight = new Set<Promise<void>>();
  const byMethod: SteadyLoadReport['byMethod'] = { GET: { sent: 0, ok: 0, failed: 0, hung: 0 }, POST: { sent: 0, ok: 0, failed: 0, hung: 0 } };
  const postIds = new Set<string>();
  let sent = 0;
  let ok = 0;
  let hung = 0;
  let maxLatencyMs = 0;
  const maxByMethod: Record<LoadMethod, number> = { GET: 0, POST: 0 };
  let stopped = false;

  // Retry counters: the highest value seen per process instance, minus what it had at the start.
  const retryBase = new Map<string, number>();
  const retryMax = new Map<string, number>();
  let baseTaken: Promise<void> = Promise.resolve();
  const scrape = async (base: boolean) => {
    if (!target.retries) return;
    let now: ReadonlyMap<string, number>;
    try {
      now = await target.retries();
    } catch {
      return;
    }
    for (const [k, v] of now) {
      if (base) retryBase.set(k, v);
      else if (!retryBase.has(k) && !retryMax.has(k)) retryBase.set(k, 0); // a process started during the load
      retryMax.set(k, Math.max(retryMax.get(k) ?? 0, v));
    }
  };
  baseTaken = scrape(true);
  const scraper = setInterval(() => void scrape(false), 1000);

  const one = async (method: LoadMethod, seq: number): Promise<void> => {
    const id = `${run}-${seq}`;
    const at = Date.now() - started;
    byMethod[method].sent++;
    const abort = new AbortController();
    let isHung = false;
    const timer = setTimeout(() => {
      isHung = true;
      abort.abort(new Error(`not settled within ${deadlineMs} ms`));
    }, deadlineMs);
    const fail = (status: number, reason: string, error: string, retryElsewhere = false, requestId?: string) => {
      if (isHung) return;
      byMethod[method].failed++;
      failed.push({ method, id, at, status, reason, error, retryElsewhere, requestId });
    };
    try {
      const body = method === 'POST' ? JSON.stringify({ id, seq, pad }) : undefined;
      if (method === 'POST') postIds.add(id);
      // A fresh TCP connection per request, so a balancer spreads them as a Service spreads the platform's.
      const r = await request(target.platformUrl(`${prefix}/${method.toLowerCase()}/${id}`), {
        method,
        body,
        headers: body ? { 'content-type': 'application/json' } : {},
        reset: true,
        signal: abort.signal,
        headersTimeout: deadlineMs + 5000,
        bodyTimeout: deadlineMs + 5000,
      });
      const text = await r.body.text();
      if (r.statusCode === 200) {
        ok++;
        byMethod[method].ok++;
      } else {
        fail(r.statusCode, String(r.headers['x-broker-failure'] ?? ''), text.slice(0, 200), r.headers['x-broker-retry-elsewhere'] === 'true', r.headers['snyk-request-id'] as string | undefined);
      }
    } catch (err) {
      fail(0, '', `error ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
      if (isHung) {
        hung++;
        byMethod[method].hung++;
      }
      maxLatencyMs = Math.max(maxLatencyMs, Date.now() - started - at);
      maxByMethod[method] = Math.max(maxByMethod[method], Date.now() - started - at);
    }
  };

  let timer: NodeJS.Timeout | undefined;
  const getShare = mix.get / (mix.get + mix.post);
  // Scheduled against the start time so a slow tick does not lower the rate; methods interleave
  // deterministically (error diffusion) so any window holds the asked-for mix.
  let acc = 0;
  let extra = 0;
  const launch = (method: LoadMethod, seq: number) => {
    const p = one(method, seq);
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };
  const tick = () => {
    if (stopped) return;
    const due = Math.floor(((Date.now() - started) * rate) / 1000) + extra;
    while (sent < due) {
      const seq = sent++;
      acc += getShare;
      let method: LoadMethod = 'POST';
      if (acc >= 1 - 1e-9) {
        acc -= 1;
        method = 'GET';
      }
      launch(method, seq);
    }
    timer = setTimeout(tick, 10);
  };
  tick();

  const report = async (): Promise<SteadyLoadReport> => {
    await baseTaken;
    await scrape(false);
    let retried = 0;
    for (const [k, v] of retryMax) retried += v - (retryBase.get(k) ?? 0);
    const seen = target.seenIds?.() ?? new Map<string, number>();
    let duplicatesAtOrigin = 0;
    for (const id of postIds) if ((seen.get(id) ?? 0) > 1) duplicatesAtOrigin++;
    for (const f of failed) f.seenAtOrigin = target.seenIds ? (seen.get(f.id) ?? 0) > 0 : undefined;
    return { sent, ok, failed: [...failed], hung, retried, duplicatesAtOrigin, byMethod: structuredClone(byMethod), durationMs: Date.now() - started, maxLatencyMs, maxLatencyMsByMethod: { ...maxByMethod } };
  };

  let stopping: Promise<SteadyLoadReport> | undefined;
  return {
    startedAt: started,
    get sent() {
      return sent;
    },
    get ok() {
      return ok;
    },
    report,
    burst(method, n) {
      if (stopped) return;
      // Counted in `sent` (ids stay unique) without moving the steady schedule.
      extra += n;
      for (let i = 0; i < n; i++) launch(method, sent++);
    },
    stop() {
      stopping ??= (async () => {
        stopped = true;
        clearTimeout(timer);
        while (inflight.size) await Promise.all([...inflight]);
        clearInterval(scraper);
        return report();
      })();
      return stopping;
    },
  };
}

/** Short text of the failures grouped by method, status and reason (for assertion messages). */
export function describeLoadFailures(failures: readonly LoadFailureRecord[]): string {
  const groups = new Map<string, number>();
  for (const f of failures) {
    const key = `${f.method} ${f.status} ${f.reason || '-'}${f.seenAtOrigin ? ' (seen at origin)' : ''}`;
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  const first = failures.slice(0, 8).map((f) => `+${f.at} ms ${f.method} ${f.id}${f.requestId ? ` (${f.requestId})` : ''}: ${f.status} ${f.reason} ${f.error}`);
  return `${failures.length} failed: ${[...groups].map(([k, n]) => `${n}× ${k}`).join('; ')}\n  ${first.join('\n  ')}`;
}

/** The one-line summary the fault suite prints per scenario. */
export function summaryLine(fault: string, r: SteadyLoadReport, recoveryMs: number | undefined): string {
  const failedGet = r.failed.filter((f) => f.method === 'GET').length;
  const failedPost = r.failed.length - failedGet;
  return `fault=${fault} sent=${r.sent} ok=${r.ok} failed=${r.failed.length} failedGET=${failedGet} failedPOST=${failedPost} hung=${r.hung} retried=${r.retried} duplicates=${r.duplicatesAtOrigin} maxLatencyMs=${r.maxLatencyMs} recoveryMs=${recoveryMs ?? '-'}`;
}

/** What a failed non-idempotent request that reached the origin must say about itself. */
export const MAY_HAVE_BEEN_APPLIED = /may have (been applied|reached)/i;

/**
 * The fault suite's goal: zero lost idempotent requests, zero hung requests, no duplicate POST
 * at the origin, and every failed POST answered with a clear status and x-broker-failure
 * reason (saying it may have been applied when the origin in fact got it).
 */
export function assertFaultGoal(r: SteadyLoadReport, assertOk: (ok: boolean, message: string) => void, excuse: (f: LoadFailureRecord) => boolean = () => false): void {
  // Excused: failures the broker cannot prevent (e.g. the platform's own TCP connection to a server killed with -9).
  const failed = r.failed.filter((f) => !excuse(f));
  const gets = failed.filter((f) => f.method === 'GET');
  assertOk(gets.length === 0, `failed GETs: ${describeLoadFailures(gets)}`);
  assertOk(r.hung === 0, `${r.hung} hung requests (${JSON.stringify(r.byMethod)})`);
  assertOk(r.duplicatesAtOrigin === 0, `${r.duplicatesAtOrigin} POSTs reached the origin more than once`);
  const unclear = failed.filter((f) => f.method === 'POST' && (f.status < 400 || !f.reason));
  assertOk(unclear.length === 0, `POSTs failed without a status and x-broker-failure reason: ${describeLoadFailures(unclear)}`);
  const silent = failed.filter((f) => f.method === 'POST' && f.seenAtOrigin && !MAY_HAVE_BEEN_APPLIED.test(f.error));
  assertOk(silent.length === 0, `POSTs the origin received reported failed without saying they may have been applied: ${describeLoadFailures(silent)}`);
  assertOk(r.ok + r.failed.length + r.hung === r.sent, `accounting: ok ${r.ok} + failed ${r.failed.length} + hung ${r.hung} ≠ sent ${r.sent}`);
}
