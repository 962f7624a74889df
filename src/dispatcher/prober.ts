import type { Logger } from '../observability/logger.js';
import type { Egress } from '../http/egress.js';
import type { Allocator } from './allocator.js';

export interface ProberOptions {
  allocator: Allocator;
  egress: Egress;
  logger: Logger;
  timeoutMs: number;
  /** Consecutive failures before the server leaves placement. */
  failures: number;
}

/**
 * Probes `GET <peer_url>/healthcheck` of servers that reported a peer URL. A server killed
 * without saying goodbye stops answering at once, long before its TTL lapses; taking it out
 * of placement then lets its clients be moved when they ask again. Servers without a peer URL
 * (the real snyk-broker) are judged by their activity only.
 */
export function createProber(o: ProberOptions): { round(): Promise<void> } {
  const failures = new Map<string, number>();
  let running = false;

  async function probe(id: string, peerUrl: string): Promise<void> {
    let ok = false;
    let reason: string;
    try {
      const res = await o.egress.request(`${peerUrl}/healthcheck`, { method: 'GET', signal: AbortSignal.timeout(o.timeoutMs) });
      ok = res.statusCode >= 200 && res.statusCode < 300;
      reason = `status ${res.statusCode}`;
      await res.body.dump();
    } catch (err) {
      reason = (err as Error).message;
    }
    if (ok) {
      if ((failures.get(id) ?? 0) >= o.failures) o.logger.info({ serverId: id, peerUrl }, 'server answers its health probe again');
      failures.delete(id);
      await o.allocator.probeResult(id, true);
      return;
    }
    const n = (failures.get(id) ?? 0) + 1;
    failures.set(id, n);
    if (n === o.failures) o.logger.warn({ serverId: id, peerUrl, reason, failures: n }, 'server failed its health probes: out of placement while it does not report either');
    else if (n < o.failures) o.logger.debug({ serverId: id, peerUrl, reason, failures: n }, 'server health probe failed');
    if (n >= o.failures) await o.allocator.probeResult(id, false);
  }

  return {
    async round() {
      if (running) return;
      running = true;
      try {
        const servers = await o.allocator.listServers();
        const known = new Set(servers.map((s) => s.id));
        for (const id of failures.keys()) if (!known.has(id)) failures.delete(id);
        // Stopping servers are draining and leave on their own; expired ones are forgotten soon.
        const targets = servers.filter((s) => s.peerUrl && (s.status === 'live' || s.status === 'down'));
        await Promise.allSettled(targets.map((s) => probe(s.id, s.peerUrl!)));
      } finally {
        running = false;
      }
    },
  };
}
