import { request, type Agent } from 'undici';
import { FAILURE_HEADER } from '../http/server-helpers.js';

/** Outcome counts of the platform traffic; failures by status and reason (or error message). */
export interface TrafficStats {
  ok: number;
  failed: number;
  failures: Map<string, number>;
}

export interface PlatformTraffic {
  readonly stats: TrafficStats;
  /** Stops sending; resolves once the requests in flight have their outcome. */
  stop(): Promise<void>;
}

/**
 * Platform traffic: steady GETs through the balancer, as the Snyk platform calls the servers;
 * request `n` goes to `path(n)` (`/broker/<token>/...`). A tick is skipped while `shouldSend` says no.
 */
export function startPlatformTraffic(opts: { serverUrl: string; path: (n: number) => string; agent: Agent; ratePerSecond: number; shouldSend: () => boolean }): PlatformTraffic {
  const stats: TrafficStats = { ok: 0, failed: 0, failures: new Map() };
  const count = (reason: string) => {
    stats.failed++;
    stats.failures.set(reason, (stats.failures.get(reason) ?? 0) + 1);
  };
  let seq = 0;
  const inFlight = new Set<Promise<void>>();
  const timer = setInterval(() => {
    if (!opts.shouldSend()) return;
    const n = seq++;
    const sent = request(`${opts.serverUrl}${opts.path(n)}`, { dispatcher: opts.agent, headersTimeout: 30_000, bodyTimeout: 30_000 })
      .then(async (res) => {
        await res.body.dump();
        if (res.statusCode === 200) stats.ok++;
        else count(`${res.statusCode} ${String(res.headers[FAILURE_HEADER] ?? '')}`.trim());
      })
      .catch((err: Error) => count(err.message));
    inFlight.add(sent);
    void sent.finally(() => inFlight.delete(sent));
  }, 1000 / opts.ratePerSecond);
  return {
    stats,
    async stop() {
      clearInterval(timer);
      await Promise.all([...inFlight]);
    },
  };
}
