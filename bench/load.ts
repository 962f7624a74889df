import { Pool } from 'undici';

export interface LoadResult {
  requests: number;
  errors: number;
  durationMs: number;
  rps: number;
  p50: number;
  p99: number;
  max: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summarise(latencies: number[], errors: number, durationMs: number): LoadResult {
  const sorted = latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    errors,
    durationMs,
    rps: (latencies.length / durationMs) * 1000,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
  };
}

export interface Target {
  origin: string;
  path: string;
  method?: 'GET' | 'POST';
  body?: Buffer;
  headers?: Record<string, string>;
}

async function once(pool: Pool, t: Target): Promise<boolean> {
  const res = await pool.request({ path: t.path, method: t.method ?? 'GET', body: t.body, headers: t.headers });
  await res.body.dump({ limit: Number.MAX_SAFE_INTEGER });
  return res.statusCode >= 200 && res.statusCode < 300;
}

/** Closed loop: `concurrency` workers each send the next request when the last one is answered. */
export async function closedLoop(t: Target, { concurrency = 32, durationMs = 10_000, onError = (_at: number) => {} } = {}): Promise<LoadResult> {
  const pool = new Pool(t.origin, { connections: concurrency, pipelining: 1, keepAliveTimeout: 30_000 });
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        let ok = false;
        try {
          ok = await once(pool, t);
        } catch {
          ok = false;
        }
        if (ok) latencies.push(performance.now() - t0);
        else {
          errors++;
          onError(performance.now());
        }
      }
    }),
  );
  const elapsed = performance.now() - start;
  await pool.close();
  return summarise(latencies, errors, elapsed);
}

/**
 * Open loop at a fixed rate. Latency is measured from each request's scheduled start, so a
 * stall shows up in the percentiles instead of silently lowering the rate (coordinated omission).
 */
export async function fixedRate(t: Target, { rate = 500, durationMs = 10_000, connections = 64 } = {}): Promise<LoadResult> {
  const pool = new Pool(t.origin, { connections, pipelining: 1, keepAliveTimeout: 30_000 });
  const latencies: number[] = [];
  let errors = 0;
  const total = Math.round((rate * durationMs) / 1000);
  const interval = 1000 / rate;
  const start = performance.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const scheduled = start + i * interval;
    const wait = scheduled - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inflight.push(
      once(pool, t).then(
        (ok) => {
          // Timers may fire a hair early; a request never takes less than nothing.
          if (ok) latencies.push(Math.max(0, performance.now() - scheduled));
          else errors++;
        },
        () => {
          errors++;
        },
      ),
    );
  }
  await Promise.all(inflight);
  const elapsed = performance.now() - start;
  await pool.close();
  return summarise(latencies, errors, elapsed);
}

/** Downloads one large response; returns bytes and MB/s. */
export async function download(t: Target): Promise<{ bytes: number; seconds: number; mbPerSecond: number; status: number }> {
  const pool = new Pool(t.origin, { connections: 1 });
  const t0 = performance.now();
  const res = await pool.request({ path: t.path, method: 'GET' });
  let bytes = 0;
  for await (const chunk of res.body) bytes += (chunk as Buffer).length;
  const seconds = (performance.now() - t0) / 1000;
  await pool.close();
  return { bytes, seconds, mbPerSecond: bytes / 1024 / 1024 / seconds, status: res.statusCode };
}
