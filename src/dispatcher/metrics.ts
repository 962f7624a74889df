import { Counter, Gauge, type Registry } from '../observability/metrics.js';
import type { Allocator } from './allocator.js';
import { tokenLabel } from './types.js';

export interface DispatcherMetrics {
  readonly registry: Registry;
  allocations: Counter<'result'>;
  refusals: Counter<'code'>;
  releases: Counter;
  serverReports: Counter<'event'>;
}

/**
 * Counters are per replica; gauges are read from the store at scrape time, so every replica
 * reports the same shared picture. Tokens appear only as the first 8 hex chars of their
 * sha256 (the dispatcher never sees a raw token).
 */
export function createDispatcherMetrics(registry: Registry, allocator: Allocator): DispatcherMetrics {
  const allocations = new Counter({
    name: 'broker_dispatcher_allocations_total',
    help: 'Allocation requests granted, by result (created: a new slot; renewed: same client asked again; moved: its server was leaving)',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const refusals = new Counter({
    name: 'broker_dispatcher_refusals_total',
    help: 'Allocation requests refused, by code (MAX_CLIENTS_PER_TOKEN, NO_LIVE_SERVER, WARMING_UP)',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const releases = new Counter({ name: 'broker_dispatcher_releases_total', help: 'Allocations released by their client (DELETE)', registers: [registry] });
  const serverReports = new Counter({
    name: 'broker_dispatcher_server_reports_total',
    help: 'Calls received from broker servers, by event',
    labelNames: ['event'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'broker_dispatcher_servers',
    help: 'Broker servers known, by status (live = in placement)',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const counts: Record<string, number> = { live: 0, stopping: 0, down: 0, expired: 0 };
      for (const s of await allocator.listServers()) counts[s.status] = (counts[s.status] ?? 0) + 1;
      for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
    },
  });
  // The three per-token gauges are collected in one scrape: read the store once for them.
  let cached: { at: number; stats: ReturnType<Allocator['tokenStats']> } | undefined;
  const tokenStats = () => {
    const now = Date.now();
    if (!cached || now - cached.at > 1_000) cached = { at: now, stats: allocator.tokenStats() };
    return cached.stats;
  };
  const perToken = (name: string, help: string, pick: (t: Awaited<ReturnType<Allocator['tokenStats']>>[number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['token_hash'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        for (const t of await tokenStats()) this.set({ token_hash: tokenLabel(t.hashedToken) }, pick(t));
      },
    });
  perToken('broker_dispatcher_token_connections', 'Live tunnels per token (label: first 8 hex chars of the hashed token)', (t) => t.tunnels);
  perToken('broker_dispatcher_token_clients', 'Client ids with a live tunnel per token', (t) => t.clients);
  perToken('broker_dispatcher_token_allocations', 'Client ids holding a slot per token', (t) => t.allocations);
  return { registry, allocations, refusals, releases, serverReports };
}
