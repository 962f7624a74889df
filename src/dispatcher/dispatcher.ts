import { createServer, type Server } from 'node:http';
import type { DispatcherConfig } from '../config/dispatcher.js';
import { createEgress, type Egress } from '../http/egress.js';
import { closeServer, listen } from '../http/server-helpers.js';
import { silentLogger, type Logger } from '../observability/logger.js';
import { createRegistry } from '../observability/metrics.js';
import { VERSION } from '../version.js';
import { Allocator } from './allocator.js';
import { createApiHandler } from './api.js';
import { createMemoryStore } from './memory-store.js';
import { createDispatcherMetrics, type DispatcherMetrics } from './metrics.js';
import { createProber } from './prober.js';
import { createRedisStore } from './redis-store.js';
import type { DispatcherStore } from './store.js';

export interface DispatcherDeps {
  logger?: Logger;
  /** Injected store (tests); default: Redis when configured, else memory. Closed on stop only if created here. */
  store?: DispatcherStore;
  clock?: () => number;
  egress?: Egress;
}

export interface Dispatcher {
  start(): Promise<void>;
  stop(reason?: string): Promise<void>;
  readonly allocator: Allocator;
  readonly metrics: DispatcherMetrics;
  /** Bound port (after start). */
  readonly port: number;
  readonly url: string;
}

export function createDispatcher(config: DispatcherConfig, deps: DispatcherDeps = {}): Dispatcher {
  const log = deps.logger ?? silentLogger();
  const ownStore = !deps.store;
  const store =
    deps.store ?? (config.redisUrl ? createRedisStore({ url: config.redisUrl, keyPrefix: config.redisKeyPrefix, logger: log }) : createMemoryStore());
  const allocator = new Allocator(config, { store, clock: deps.clock, logger: log });
  const registry = createRegistry('broker_dispatcher');
  const metrics = createDispatcherMetrics(registry, allocator);
  const handler = createApiHandler({
    allocator,
    metrics,
    logger: log,
    urlPrefix: config.urlPrefix,
    internalSecret: config.internalSecret,
    retryAfterSeconds: config.retryAfterSeconds,
    version: VERSION,
    ready: async () => {
      await store.ping();
      return true;
    },
  });
  const server: Server = createServer(handler);
  server.keepAliveTimeout = 65_000;
  const timers: NodeJS.Timeout[] = [];
  let egress = deps.egress;
  let port = 0;

  const every = (ms: number, what: string, fn: () => Promise<void>) => {
    const t = setInterval(() => {
      fn().catch((err: unknown) => log.warn({ err: (err as Error).message }, `${what} failed`));
    }, ms);
    t.unref();
    timers.push(t);
  };

  return {
    allocator,
    metrics,
    get port() {
      return port;
    },
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    async start() {
      port = await listen(server, config.port, config.host);
      every(config.sweepIntervalMs, 'sweep', () => allocator.sweep());
      if (config.probeIntervalMs > 0) {
        egress ??= await createEgress({ connectTimeoutMs: config.probeTimeoutMs, headersTimeoutMs: config.probeTimeoutMs, bodyTimeoutMs: config.probeTimeoutMs });
        const prober = createProber({ allocator, egress, logger: log, timeoutMs: config.probeTimeoutMs, failures: config.probeFailures });
        every(config.probeIntervalMs, 'server probe', () => prober.round());
      }
      log.info(
        { port, prefix: config.urlPrefix, store: store.kind, maxClientsPerToken: config.maxClientsPerToken, internalSecret: config.internalSecret !== undefined },
        'dispatcher listening',
      );
    },
    async stop(reason) {
      log.info({ reason }, 'dispatcher stopping');
      for (const t of timers) clearInterval(t);
      await closeServer(server);
      server.closeAllConnections?.();
      if (egress && !deps.egress) await egress.close().catch(() => undefined);
      if (ownStore) await store.close();
    },
  };
}
