import { EnvReader, LOG_LEVELS, type Env, type LogLevel } from './env.js';
import { checkEgressVariables } from './files.js';

export interface DispatcherConfig {
  port: number;
  /** Bind address (default: all interfaces). */
  host?: string;
  /** Client-facing allocation path prefix, no trailing slash (`/hidden/broker`). */
  urlPrefix: string;
  maxClientsPerToken: number;
  /** Redis connection URL; unset → in-memory store (one replica only). */
  redisUrl?: string;
  /** Key prefix in Redis, so several dispatcher deployments can share one Redis. */
  redisKeyPrefix: string;
  /** When set, `/internal/...` requires `x-broker-internal-secret` equal to it. */
  internalSecret?: string;
  /** A server with no registration/ping/connection/probe activity for this long leaves placement. */
  serverTtlMs: number;
  /** A client whose last tunnel closed (on a live server) keeps its slot this long. */
  clientLeaseMs: number;
  /** A granted allocation (or one whose server went away) waits this long for a connection. */
  connectGraceMs: number;
  /** Retry-After (seconds) on 429/503 answers. */
  retryAfterSeconds: number;
  /** Active health probe of servers that reported a peer URL; 0 disables it. */
  probeIntervalMs: number;
  probeTimeoutMs: number;
  /** Consecutive failed probes before a server leaves placement. */
  probeFailures: number;
  /** Housekeeping period: drop expired servers, dead connections and free allocations. */
  sweepIntervalMs: number;
  /** After start, when servers turn out to be running already, new client ids wait this long (connections re-report). */
  startupGraceMs: number;
  logLevel: LogLevel;
  /** Secret values, for the log scrubber. */
  secrets: string[];
}

function passwordOf(url: string | undefined): string[] {
  if (!url) return [];
  try {
    const u = new URL(url);
    return u.password ? [decodeURIComponent(u.password)] : [];
  } catch {
    return [];
  }
}

/** Reads and validates the dispatcher's environment; throws one ConfigError naming every bad variable. */
export async function loadDispatcherConfig(env: Env): Promise<DispatcherConfig> {
  const r = new EnvReader(env);
  const port = r.port('PORT', 8080);
  const host = r.string('DISPATCHER_HOST');
  let urlPrefix = r.string('DISPATCHER_URL_PREFIX', r.string('SNYK_DISPATCHER_URL_PREFIX', '/hidden/broker'));
  if (!urlPrefix.startsWith('/') || /\s|\?|#/.test(urlPrefix)) {
    r.problem(`DISPATCHER_URL_PREFIX must be a URL path starting with /, got ${JSON.stringify(urlPrefix)}`);
  }
  urlPrefix = urlPrefix.replace(/\/+$/, '');
  if (urlPrefix.startsWith('/internal')) {
    r.problem(`DISPATCHER_URL_PREFIX must not start with /internal (reserved for the server API), got ${JSON.stringify(urlPrefix)}`);
  }
  const maxClientsPerToken = r.int('MAX_CLIENTS_PER_TOKEN', 4, { min: 1, max: 1000 });
  const redisRaw = r.string('DISPATCHER_REDIS_URL');
  let redisUrl: string | undefined;
  if (redisRaw !== undefined) {
    const parsed = r.url('DISPATCHER_REDIS_URL', redisRaw, { protocols: ['redis:', 'rediss:'] });
    if (parsed) redisUrl = redisRaw;
  }
  const redisKeyPrefix = r.string('DISPATCHER_REDIS_KEY_PREFIX', 'ha-broker:dispatcher:');
  const internalSecret = r.string('BROKER_INTERNAL_SECRET');
  const serverTtlMs = r.int('SERVER_TTL_MS', 90_000, { min: 1_000 });
  const clientLeaseMs = r.int('CLIENT_LEASE_MS', 2_000, { min: 0 });
  const connectGraceMs = r.int('CLIENT_CONNECT_GRACE_MS', 30_000, { min: 1_000 });
  const retryAfterSeconds = r.int('RETRY_AFTER_SECONDS', 2, { min: 1, max: 3600 });
  const probeIntervalMs = r.int('SERVER_PROBE_INTERVAL_MS', 2_000, { min: 0 });
  const probeTimeoutMs = r.int('SERVER_PROBE_TIMEOUT_MS', 2_000, { min: 100 });
  const probeFailures = r.int('SERVER_PROBE_FAILURES', 2, { min: 1, max: 100 });
  const sweepIntervalMs = r.int('DISPATCHER_SWEEP_INTERVAL_MS', 10_000, { min: 100 });
  const startupGraceMs = r.int('DISPATCHER_STARTUP_GRACE_MS', 30_000, { min: 0 });
  const logLevel = r.enumOf<LogLevel>('LOG_LEVEL', LOG_LEVELS, 'info');
  // Used by the server probes and rediss://.
  await checkEgressVariables(r);
  r.done();
  return {
    port,
    host,
    urlPrefix,
    maxClientsPerToken,
    redisUrl,
    redisKeyPrefix,
    internalSecret,
    serverTtlMs,
    clientLeaseMs,
    connectGraceMs,
    retryAfterSeconds,
    probeIntervalMs,
    probeTimeoutMs,
    probeFailures,
    sweepIntervalMs,
    startupGraceMs,
    logLevel,
    secrets: [internalSecret, ...passwordOf(redisUrl)].filter((s): s is string => !!s),
  };
}
