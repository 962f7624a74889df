import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { loadClientConfig, type ClientConfig } from '../config/client.js';
import type { Env } from '../config/env.js';
import { createEgress, type Egress } from '../http/egress.js';
import { clientErrorHandler, listen } from '../http/server-helpers.js';
import { PARSER_FAILURES } from '../protocol/failures.js';
import { createListener } from '../http/listener.js';
import { createLogger, SecretScrubber, type Logger } from '../observability/logger.js';
import type { Program } from '../program.js';
import { createAllocator, type Allocator } from './allocation.js';
import { ClientFilters } from './client-filters.js';
import { announceStart, drainClient, type ClientLifecycle } from './client-lifecycle.js';
import { createClientTunnels, identifyMetadataFor, TunnelSecurity } from './client-tunnels.js';
import { createLocalHandler } from './local-server.js';
import { createClientMetrics, type ClientMetrics } from './metrics.js';
import { formatPreflight, runPreflightChecks, type PreflightCheck } from './preflight.js';
import { createRelay, type Relay } from './relay.js';
import { createResponseWriter } from './response-writer.js';
import type { Tunnel } from './tunnel.js';
import { createBodyUrlRewriter } from './res-body-url-sub.js';
import { createCommitSigner } from './commit-signing/commit-signer.js';
import { InstallationTokens, startInstallationTokens } from './github-app/installation-token.js';

export interface ClientDeps {
  logger: Logger;
  egress: Egress;
  metrics?: ClientMetrics;
  /** Variables for ${VAR} in accept rules (default: the config's effective environment). */
  env?: Env;
  /** The logger's scrubber, so credentials of reloaded rules are redacted too. */
  scrubber?: SecretScrubber;
  /** Host to bind the local server to (default all interfaces). */
  host?: string;
}

export interface BrokerClient extends Program {
  /** Binds the local HTTP server and opens the tunnels; resolves with the bound port. */
  start(): Promise<{ port: number }>;
  readonly tunnels: readonly Tunnel[];
  readonly metrics: ClientMetrics;
  isReady(): boolean;
  preflight(): PreflightCheck[];
}

/** The dispatcher's allocation client (HA mode): asked for a placement before every tunnel attempt. */
function allocatorFor(config: ClientConfig, deps: ClientDeps, instanceId: string, metrics: ClientMetrics): Allocator | undefined {
  if (!config.haMode) return undefined;
  const { token, clientId, dispatcherBaseUrl, dispatcherUrlPrefix, clientLocation, wireVersion, serverUrl, trustServerUrl } = config;
  return createAllocator({
    egress: deps.egress,
    logger: deps.logger,
    ...{ token, clientId, instanceId, dispatcherBaseUrl, dispatcherUrlPrefix, clientLocation, wireVersion, serverUrl, trustServerUrl },
    onOutcome: (outcome) => metrics.allocations.inc({ outcome }),
  });
}

/** The request relay: the private rules, the one egress, and what a request may need on its way (App tokens, commit signing). */
function relayFor(config: ClientConfig, deps: ClientDeps, parts: { env: Env; metrics: ClientMetrics; filters: ClientFilters; appTokens?: InstallationTokens }): Relay {
  const { env, metrics, filters } = parts;
  const log = deps.logger;
  return createRelay({
    rules: () => filters.privateRules,
    egress: deps.egress,
    writer: createResponseWriter({ egress: deps.egress, token: config.token, wireVersion: config.wireVersion, postTimeoutMs: config.postTimeoutMs, logger: log }),
    logger: log,
    metrics,
    wireVersion: config.wireVersion,
    maxAckResponseBytes: config.maxAckResponseBytes,
    removeXForwardedHeaders: config.removeXForwardedHeaders,
    vars: env,
    reloadFilters: filters.reload,
    tunnelAnswers: config.tunnelAnswers,
    insecureDownstream: config.insecureDownstream,
    bodyUrlRewriter: config.resBodyUrlSub ? createBodyUrlRewriter(config.resBodyUrlSub, config.token) : undefined,
    logBodies: config.logEnableBody,
    liveVars: parts.appTokens,
    commitSigner: config.commitSigning && createCommitSigner(config.commitSigning),
  });
}

/** Builds a broker client from its configuration; nothing runs until start(). The composition root: it only wires. */
export function createClient(config: ClientConfig, deps: ClientDeps): BrokerClient {
  const log = deps.logger;
  const metrics = deps.metrics ?? createClientMetrics();
  const env = deps.env ?? config.env;
  const lifecycle: ClientLifecycle = { draining: false, closing: false, preflight: [] };
  const filters = new ClientFilters(config, { env, logger: log, scrubber: deps.scrubber });
  let server: Server | undefined;
  // Pods of one replica share BROKER_CLIENT_ID during a rolling update: this names the process.
  const instanceId = randomUUID();
  const allocator = allocatorFor(config, deps, instanceId, metrics);
  const appTokens = config.githubApp ? new InstallationTokens({ app: config.githubApp, egress: deps.egress, logger: log, scrubber: deps.scrubber }) : undefined;
  const relay = relayFor(config, deps, { env, metrics, filters, appTokens });
  const security = new TunnelSecurity(config, env);
  const isReady = (): boolean => !lifecycle.draining && tunnels.some((t) => t.isReady);
  const tunnels = createClientTunnels(config, {
    logger: log,
    egress: deps.egress,
    metrics,
    allocator,
    security,
    identifyMetadata: identifyMetadataFor(config, env, instanceId, filters, () => lifecycle.preflight),
    onEvent: (t, name, args, reply) => relay.onEvent(t, name, args, reply),
    isReady,
  });
  const local = createLocalHandler({
    config,
    logger: log,
    egress: deps.egress,
    metrics,
    tunnels,
    publicRules: () => filters.publicRules,
    acceptDocument: () => filters.accept,
    isDraining: () => lifecycle.draining,
    isClosing: () => lifecycle.closing,
    isReady,
    preflight: () => lifecycle.preflight,
    reloadFilters: filters.reload,
    githubApp: appTokens,
  });
  let stopping: Promise<void> | undefined;

  return {
    tunnels,
    metrics,
    isReady,
    preflight: () => lifecycle.preflight,
    async start() {
      announceStart(config, env, { logger: log, egress: deps.egress, lifecycle });
      await security.loadCaFiles();
      if (appTokens) await startInstallationTokens(appTokens);
      server = createListener(config.tls, local.handler);
      server.requestTimeout = 600_000;
      // Refused requests (oversized head, malformed or ambiguous framing) get a status with x-broker-failure.
      server.on('clientError', clientErrorHandler(PARSER_FAILURES));
      const port = await listen(server, config.port, deps.host);
      log.info({ port, clientId: config.clientId, instanceId, serverUrl: config.serverUrl, haMode: config.haMode, version: config.wireVersion }, 'broker client listening');
      for (const t of tunnels) t.start();
      return { port };
    },
    stop(reason = 'stop') {
      appTokens?.stop();
      stopping ??= drainClient(config, { logger: log, metrics, lifecycle, tunnels, relay, local, allocator, server: () => server }, reason);
      return stopping;
    },
  };
}

export { CLIENT_CAPABILITY } from './client-tunnels.js';

function makeLogging(config: ClientConfig): { logger: Logger; scrubber: SecretScrubber } {
  const scrubber = new SecretScrubber();
  scrubber.add(...config.secrets);
  return { logger: createLogger({ level: config.logLevel, name: 'broker-client', scrubber }), scrubber };
}

async function makeEgress(config: ClientConfig): Promise<Egress> {
  return createEgress({ caFiles: config.caFiles, rejectUnauthorized: config.rejectUnauthorized, connectTimeoutMs: config.connectTimeoutMs });
}

/** `broker client`: load config (exit 2 on problems), start, run until stopped. */
export async function startClient(env: Env): Promise<Program> {
  const config = await loadClientConfig(env);
  const { logger, scrubber } = makeLogging(config);
  const egress = await makeEgress(config);
  // A plain copy: rules resolve ${VAR}s per request, and process.env lookups are slow native calls.
  for (const note of config.startNotes) logger[note.level](note.fields ?? {}, note.message);
  const client = createClient(config, { logger, egress, env: config.env, scrubber });
  await client.start();
  return {
    async stop(reason) {
      await client.stop(reason);
      await egress.close().catch(() => undefined);
      // The CLI exits right after: make sure the last lines left the async destination.
      await new Promise<void>((resolve) => logger.flush(() => resolve()));
    },
  };
}

/** `broker preflight`: runs the checks once, prints the summary, exit code 1 when one failed. */
export async function runPreflightCommand(env: Env): Promise<number> {
  const config = await loadClientConfig(env);
  const { logger, scrubber } = makeLogging(config);
  const egress = await makeEgress(config);
  try {
    const results = await runPreflightChecks(config, egress);
    process.stdout.write(scrubber.scrub(formatPreflight(results)));
    return results.some((r) => r.status === 'error') ? 1 : 0;
  } finally {
    await egress.close().catch(() => undefined);
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
  }
}
