import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { loadClientConfig, type ClientConfig } from '../config/client.js';
import type { Env } from '../config/env.js';
import { universalEnabled } from '../config/universal.js';
import { createEgress, type Egress } from '../http/egress.js';
import { clientErrorHandler, closeServer, listen } from '../http/server-helpers.js';
import { PARSER_FAILURES } from '../protocol/failures.js';
import { createListener } from '../http/listener.js';
import { createLogger, SecretScrubber, type Logger } from '../observability/logger.js';
import type { Program } from '../program.js';
import { createBrokerConnection } from './broker-connection.js';
import { announceStart, type ClientLifecycle } from './client-lifecycle.js';
import { createClientMetrics, type ClientMetrics } from './metrics.js';
import { formatPreflight, runPreflightChecks, type PreflightCheck } from './preflight.js';
import type { Tunnel } from './tunnel.js';

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

/** Builds a broker client from its configuration; nothing runs until start(). The composition root: it only wires. */
export function createClient(config: ClientConfig, deps: ClientDeps): BrokerClient {
  const log = deps.logger;
  const metrics = deps.metrics ?? createClientMetrics();
  const env = deps.env ?? config.env;
  const lifecycle: ClientLifecycle = { draining: false, closing: false, preflight: [] };
  // Pods of one replica share BROKER_CLIENT_ID during a rolling update: this names the process.
  const instanceId = randomUUID();
  const connection = createBrokerConnection(config, { logger: log, egress: deps.egress, metrics, env, scrubber: deps.scrubber, lifecycle, instanceId });
  let server: Server | undefined;
  let stopping: Promise<void> | undefined;

  return {
    tunnels: connection.tunnels,
    metrics,
    isReady: () => connection.isReady(),
    preflight: () => lifecycle.preflight,
    async start() {
      announceStart(config, env, { logger: log, egress: deps.egress, lifecycle });
      await connection.prepare();
      server = createListener(config.tls, connection.local.handler);
      server.requestTimeout = 600_000;
      // Refused requests (oversized head, malformed or ambiguous framing) get a status with x-broker-failure.
      server.on('clientError', clientErrorHandler(PARSER_FAILURES));
      const port = await listen(server, config.port, deps.host);
      log.info({ port, clientId: config.clientId, instanceId, serverUrl: config.serverUrl, haMode: config.haMode, version: config.wireVersion }, 'broker client listening');
      connection.openTunnels();
      return { port };
    },
    stop(reason = 'stop') {
      stopping ??= connection.stop(reason).then(() => (server ? closeServer(server) : undefined));
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
  if (universalEnabled(env)) return (await import('./universal/universal-client.js')).startUniversalClient(env);
  const config = await loadClientConfig(env);
  const { logger, scrubber } = makeLogging(config);
  const egress = await makeEgress(config);
  // A plain copy: rules resolve ${VAR}s per request, and process.env lookups are slow native calls.
  for (const note of config.startNotes) logger[note.level](note.fields ?? {}, note.message);
  const client = createClient(config, { logger, egress, env: config.env, scrubber });
  await client.start();
  return {
    logger,
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
