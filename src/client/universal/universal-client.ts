import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { EnvReader, isOn, LOG_LEVELS, type Env, type LogLevel } from '../../config/env.js';
import { readClientTuning } from '../../config/client-tuning.js';
import { INSECURE_DOWNSTREAM_WARNING } from '../insecure-downstream.js';
import { ConfigError } from '../../config/errors.js';
import { readUniversalConfig, type UniversalConfig } from '../../config/universal.js';
import { UNIVERSAL_MODE_VARIABLES, unsupportedSnykVariables } from '../../config/unsupported-snyk-vars.js';
import { createEgress, type Egress, type EgressOptions } from '../../http/egress.js';
import { describeError } from '../../http/errors.js';
import { createListener } from '../../http/listener.js';
import { clientErrorHandler, closeServer, listen } from '../../http/server-helpers.js';
import { createLogger, SecretScrubber, type Logger } from '../../observability/logger.js';
import { PARSER_FAILURES } from '../../protocol/failures.js';
import type { Program } from '../../program.js';
import { DEFAULT_WIRE_VERSION } from '../../config/client.js';
import { connectionBuilder } from './connection-builder.js';
import { createClientMetrics, type BaseClientMetrics } from '../metrics.js';
import type { PlatformAuth } from '../platform-auth.js';
import { planConnection, referencedVariables } from './connection-env.js';
import { ConnectionRegistry, type RunningConnection } from './connection-registry.js';
import { ConnectionsError, fileConnections, remoteConnections, type ConnectionsSource } from './connections-source.js';
import { OAuthToken, OAuthTokenError } from './oauth-token.js';
import { ConnectionSync } from './connection-sync.js';
import { createUniversalLocalHandler } from './universal-local.js';

/** What the Universal client runs with, read once at start (exit 2 on problems). */
export interface UniversalClientSettings {
  universal: UniversalConfig;
  /** The process environment: credential references resolve from it, connections inherit it. */
  env: Env;
  /** x-snyk-broker-client-id of every connection: BROKER_CLIENT_ID, else one uuid per process. */
  clientId: string;
  port: number;
  healthcheckPath: string;
  systemcheckPath: string;
  wireVersion: string;
  cwd: string;
  logLevel: LogLevel;
  /** The one egress stack every connection shares, set up as a classic client's (CA_CERT, TLS, SOCKET_CONNECT_TIMEOUT). */
  egress: EgressOptions;
}

export interface UniversalClientDeps {
  logger: Logger;
  egress: Egress;
  scrubber: SecretScrubber;
  metrics?: BaseClientMetrics;
  host?: string;
  /** Replaces the OAuth client (tests). */
  auth?: PlatformAuth;
}

export interface UniversalClient extends Program {
  start(): Promise<{ port: number }>;
  readonly connections: ReadonlyMap<string, RunningConnection>;
  /** Runs one sync now (coalesced with one in progress). */
  sync(reason: string): Promise<void>;
  isReady(): boolean;
}

/** How long a replaced connection (rotated, changed, restarted) keeps its tunnels while the new ones open. */
const REPLACE_READY_MS = 30_000;

/** Reads the settings of the Universal client from the environment; throws ConfigError listing every problem. */
export function readUniversalSettings(env: Env, cwd = process.cwd()): UniversalClientSettings {
  const r = new EnvReader(env);
  const universal = readUniversalConfig(r, cwd);
  const port = r.port('PORT', 7341);
  const logLevel = r.enumOf('LOG_LEVEL', LOG_LEVELS, 'info');
  // The tuning every connection reads again: a bad value stops the start here, not each connection.
  const { connectTimeoutMs } = readClientTuning(r);
  const settings: UniversalClientSettings = {
    universal,
    env,
    clientId: r.string('BROKER_CLIENT_ID') ?? randomUUID(),
    port,
    healthcheckPath: r.string('BROKER_HEALTHCHECK_PATH', '/healthcheck'),
    systemcheckPath: r.string('BROKER_SYSTEMCHECK_PATH', '/systemcheck'),
    wireVersion: r.string('BROKER_VERSION', DEFAULT_WIRE_VERSION),
    cwd,
    logLevel,
    egress: { caFiles: [r.string('CA_CERT')].filter((x): x is string => Boolean(x)), rejectUnauthorized: r.string('NODE_TLS_REJECT_UNAUTHORIZED') !== '0', connectTimeoutMs },
  };
  r.done();
  return settings;
}

/** Where the deployment's connections come from: Snyk's API, or the local file (SKIP_REMOTE_CONFIG). */
function sourceFor(s: UniversalClientSettings, deps: UniversalClientDeps, auth: PlatformAuth | undefined): ConnectionsSource {
  const ub = s.universal;
  if (ub.connectionsFile) return fileConnections(ub.connectionsFile);
  return remoteConnections({ egress: deps.egress, auth: auth!, apiBaseUrl: ub.apiBaseUrl, deploymentId: ub.deploymentId!, apiVersion: ub.apiVersion, clientId: s.clientId, wireVersion: s.wireVersion });
}

/** Builds the Universal Broker client; nothing runs until start(). The composition root: it only wires. */
export function createUniversalClient(s: UniversalClientSettings, deps: UniversalClientDeps): UniversalClient {
  const log = deps.logger;
  const ub = s.universal;
  const metrics = deps.metrics ?? createClientMetrics();
  const auth = deps.auth ?? (ub.oauth ? new OAuthToken({ egress: deps.egress, apiBaseUrl: ub.apiBaseUrl, ...ub.oauth, scrubber: deps.scrubber }) : undefined);
  const source = sourceFor(s, deps, auth);
  let draining = false;
  let server: Server | undefined;

  const build = connectionBuilder({ settings: s, logger: log, egress: deps.egress, scrubber: deps.scrubber, metrics, auth, sync: () => void sync.run('server asked (config/reload)'), restart: (name, reason) => void registry.restart(name, reason) });
  const registry = new ConnectionRegistry({ logger: log, build, replaceReadyMs: REPLACE_READY_MS });
  const anyOpen = () => [...registry.running.values()].some((c) => c.connection.tunnels.some((t) => t.isOpen));
  const sync = new ConnectionSync({
    logger: log,
    intervalMs: ub.syncIntervalMs,
    needsPolling: () => !anyOpen(),
    async once() {
      const list = await source.list();
      const referenced = referencedVariables(list);
      await registry.apply(list.map((c) => planConnection(c, s.env, ub, s.clientId, referenced)));
    },
  });
  const isReady = () => !draining && [...registry.running.values()].some((c) => c.connection.isReady());
  const handler = createUniversalLocalHandler({
    logger: log,
    metrics,
    egress: deps.egress,
    connections: () => registry.running.values(),
    healthcheckPath: s.healthcheckPath,
    systemcheckPath: s.systemcheckPath,
    isDraining: () => draining,
    isReady,
  });
  let stopping: Promise<void> | undefined;

  return {
    connections: registry.running,
    isReady,
    sync: (reason) => sync.run(reason),
    async start() {
      log.info({ deploymentId: ub.deploymentId, source: source.description, apiBaseUrl: ub.apiBaseUrl, clientId: s.clientId }, 'Universal Broker client starting');
      if (isOn(s.env.INSECURE_DOWNSTREAM)) log.warn({}, INSECURE_DOWNSTREAM_WARNING);
      for (const { variable, reason } of unsupportedSnykVariables(s.env)) {
        if (!UNIVERSAL_MODE_VARIABLES.has(variable)) log.warn({ variable, reason }, `${variable} is a snyk-broker variable that ha-broker does not implement; ignored`);
      }
      // The first list decides whether the credentials and the deployment are right at all: exit 2 if not.
      try {
        await sync.first();
      } catch (err) {
        if ((err instanceof OAuthTokenError && err.refused) || (err instanceof ConnectionsError && err.fatal)) throw err;
        log.warn({ err: describeError(err) }, 'the connections could not be read yet; retrying in the background');
      }
      sync.startPolling();
      server = createListener(undefined, handler);
      server.requestTimeout = 600_000;
      server.on('clientError', clientErrorHandler(PARSER_FAILURES));
      const port = await listen(server, s.port, deps.host);
      log.info({ port, connections: registry.running.size }, 'Universal Broker client listening');
      return { port };
    },
    stop(reason = 'stop') {
      stopping ??= (async () => {
        draining = true;
        sync.stop();
        await registry.stopAll(reason);
        if (server) await closeServer(server);
        log.info({}, 'Universal Broker client stopped');
      })();
      return stopping;
    },
  };
}

/** `broker client` with UNIVERSAL_BROKER_ENABLED: read the settings (exit 2 on problems), start, run until stopped. */
export async function startUniversalClient(env: Env): Promise<Program> {
  const settings = readUniversalSettings(env);
  const scrubber = new SecretScrubber();
  if (settings.universal.oauth) scrubber.add(settings.universal.oauth.clientSecret);
  const logger = createLogger({ level: settings.logLevel, name: 'broker-client', scrubber });
  const egress = await createEgress(settings.egress);
  const client = createUniversalClient(settings, { logger, egress, scrubber });
  try {
    await client.start();
  } catch (err) {
    await client.stop('start failed').catch(() => undefined);
    await egress.close().catch(() => undefined);
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    // Wrong credentials or deployment will not fix themselves: exit 2 with what to change.
    if ((err instanceof OAuthTokenError && err.refused) || (err instanceof ConnectionsError && err.fatal)) throw new ConfigError([err.message]);
    throw err;
  }
  return {
    logger,
    async stop(reason) {
      await client.stop(reason);
      await egress.close().catch(() => undefined);
      await new Promise<void>((resolve) => logger.flush(() => resolve()));
    },
  };
}
