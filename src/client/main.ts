import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadClientConfig, type ClientConfig, type TunnelRole } from '../config/client.js';
import type { Env } from '../config/env.js';
import { createEgress, type Egress } from '../http/egress.js';
import { clientErrorHandler, closeServer, listen } from '../http/server-helpers.js';
import { PARSER_FAILURES } from '../protocol/failures.js';
import { createListener } from '../http/listener.js';
import { createLogger, SecretScrubber, type Logger } from '../observability/logger.js';
import { compileRules, type AcceptFile, type RuleSet } from '../filters/index.js';
import { loadAccept } from '../config/accept.js';
import { CLIENT_INSTANCE_METADATA, hashToken } from '../protocol/index.js';
import type { Program } from '../program.js';
import { createAllocator, type Allocator } from './allocation.js';
import { createLocalHandler } from './local-server.js';
import { createClientMetrics, type ClientMetrics } from './metrics.js';
import { formatPreflight, logPreflight, runPreflightChecks, type PreflightCheck } from './preflight.js';
import { createRelay } from './relay.js';
import { createResponseWriter } from './response-writer.js';
import { Tunnel, type Placement } from './tunnel.js';
import { createProxyAgent } from './proxy-agent.js';
import { createBodyUrlRewriter } from './res-body-url-sub.js';
import { INSECURE_DOWNSTREAM_WARNING } from './insecure-downstream.js';
import { unsupportedSnykVariables } from '../config/unsupported-snyk-vars.js';

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

/** Builds a broker client from its configuration; nothing runs until start(). */
export function createClient(config: ClientConfig, deps: ClientDeps): BrokerClient {
  const log = deps.logger;
  const metrics = deps.metrics ?? createClientMetrics();
  const env = deps.env ?? config.env;
  let accept: AcceptFile = config.accept;
  let privateRules: RuleSet = config.privateRules;
  let publicRules: RuleSet = config.publicRules;
  let draining = false;
  /** Set when the drain is about to close the tunnels: from then on webhooks are refused. */
  let closing = false;
  let preflightResults: PreflightCheck[] = [];
  let server: Server | undefined;
  const stopSignal = new AbortController();
  // Pods of one replica share BROKER_CLIENT_ID during a rolling update: this names the process.
  const instanceId = randomUUID();

  const allocator: Allocator | undefined = config.haMode
    ? createAllocator({
        egress: deps.egress,
        logger: log,
        token: config.token,
        clientId: config.clientId,
        instanceId,
        dispatcherBaseUrl: config.dispatcherBaseUrl,
        dispatcherUrlPrefix: config.dispatcherUrlPrefix,
        clientLocation: config.clientLocation,
        wireVersion: config.wireVersion,
        serverUrl: config.serverUrl,
        trustServerUrl: config.trustServerUrl,
        onOutcome: (outcome) => metrics.allocations.inc({ outcome }),
      })
    : undefined;
  const fixedPlacement: Placement = { serverUrl: config.serverUrl };

  const writer = createResponseWriter({ egress: deps.egress, token: config.token, wireVersion: config.wireVersion, postTimeoutMs: config.postTimeoutMs, logger: log });
  const relay = createRelay({
    rules: () => privateRules,
    egress: deps.egress,
    writer,
    logger: log,
    metrics,
    wireVersion: config.wireVersion,
    maxAckResponseBytes: config.maxAckResponseBytes,
    removeXForwardedHeaders: config.removeXForwardedHeaders,
    vars: env,
    reloadFilters: () => reloadFilters(),
    tunnelAnswers: config.tunnelAnswers,
    insecureDownstream: config.insecureDownstream,
    bodyUrlRewriter: config.resBodyUrlSub ? createBodyUrlRewriter(config.resBodyUrlSub, config.token) : undefined,
    logBodies: config.logEnableBody,
  });

  async function reloadFilters(): Promise<void> {
    const { accept: next } = await loadAccept(config.acceptSource, env);
    const nextPrivate = compileRules(next.private, env, `accept rules ${config.acceptPath} (private rules)`);
    const nextPublic = compileRules(next.public, env, `accept rules ${config.acceptPath} (public rules)`);
    // New rules may reference new credentials: scrub them before anything can log them.
    deps.scrubber?.add(...nextPrivate.secrets(), ...nextPublic.secrets());
    accept = next;
    privateRules = nextPrivate;
    publicRules = nextPublic;
    log.info({ private: next.private.length, public: next.public.length }, 'accept rules reloaded');
  }

  const clientConfigFlags = {
    brokerClientId: config.clientId,
    version: config.wireVersion,
    haMode: config.haMode,
    debugMode: config.logLevel === 'debug',
    bodyLogMode: config.logEnableBody,
    credPooling: Object.keys(env).some((k) => k.endsWith('_POOL')),
    privateCa: Boolean(env.NODE_EXTRA_CA_CERTS || env.CA_CERT),
    tlsReject: !config.rejectUnauthorized,
    proxy: config.proxy,
    customAccept: config.customAccept,
    insecureDownstream: config.insecureDownstream,
    universalBroker: false,
  };

  // Set in start(): the CA files are read asynchronously.
  let tunnelTls: { ca?: string[]; rejectUnauthorized?: boolean } = config.rejectUnauthorized ? {} : { rejectUnauthorized: false };
  let proxyAgent = createProxyAgent(config.serverUrl, env, tunnelTls);

  const tunnels = (['primary', 'secondary'] as TunnelRole[]).map(
    (role) =>
      new Tunnel({
        role,
        token: config.token,
        clientId: config.clientId,
        wireVersion: config.wireVersion,
        pingIntervalMs: config.pingIntervalMs,
        pongTimeoutMs: config.pongTimeoutMs,
        connectTimeoutMs: config.connectTimeoutMs,
        maxFrameBytes: config.maxFrameBytes,
        logger: log,
        transport: config.transport,
        egress: deps.egress,
        agent: () => proxyAgent,
        tls: () => tunnelTls,
        placement: (signal) => (allocator ? allocator.placement(signal) : Promise.resolve(fixedPlacement)),
        identifyMetadata: (r) => ({
          // ha-broker/1 lets our server recognise our client (drain with server-close + 4001).
          capabilities: ['post-streams', CLIENT_CAPABILITY],
          clientId: config.clientId,
          [CLIENT_INSTANCE_METADATA]: instanceId,
          identifier: hashToken(config.token),
          ...(config.preflightEnabled && preflightResults.length > 0 ? { preflightChecks: preflightResults } : {}),
          version: config.wireVersion,
          clientConfig: clientConfigFlags,
          filters: accept,
          role: r,
        }),
        onEvent: (t, name, args, reply) => relay.onEvent(t, name, args, reply),
        onServerGone: (t, reason) => allocator?.invalidate(reason, t.allocation) ?? false,
        onStateChange: (t, state) => {
          metrics.tunnelsOpen.set({ role: t.role }, t.isOpen ? 1 : 0);
          if (state === 'ready') metrics.tunnelConnects.inc({ role: t.role });
          metrics.ready.set(isReady() ? 1 : 0);
        },
      }),
  );

  function isReady(): boolean {
    return !draining && tunnels.some((t) => t.isReady);
  }

  const local = createLocalHandler({
    config,
    logger: log,
    egress: deps.egress,
    metrics,
    tunnels,
    publicRules: () => publicRules,
    acceptDocument: () => accept,
    isDraining: () => draining,
    isClosing: () => closing,
    isReady,
    preflight: () => preflightResults,
    reloadFilters,
  });

  async function waitUntil(check: () => boolean, deadline: number): Promise<boolean> {
    while (!check()) {
      if (Date.now() >= deadline) return false;
      await sleep(50);
    }
    return true;
  }

  let stopping: Promise<void> | undefined;

  return {
    tunnels,
    metrics,
    isReady,
    preflight: () => preflightResults,
    async start() {
      log.info({ enabled: config.haMode }, 'checking for HA mode');
      for (const { variable, reason } of unsupportedSnykVariables(env)) log.warn({ variable, reason }, `${variable} is a snyk-broker variable that ha-broker does not implement; ignored`);
      if (config.insecureDownstream) log.warn({}, INSECURE_DOWNSTREAM_WARNING);
      if (config.resBodyUrlSub) log.info({ url: config.resBodyUrlSub }, 'RES_BODY_URL_SUB: rewriting this URL in JSON answers to point through the broker');
      if (config.logEnableBody) log.info({ logLevel: config.logLevel }, 'LOG_ENABLE_BODY: relayed request and response bodies are logged at debug level');
      if (config.disableSnippets) log.info({ snippets: true }, 'Disabling snippets rules for Code/Git.');
      if (config.preflightEnabled) {
        // Never blocks the start: results land in /health/checks and later identifies.
        void runPreflightChecks(config, deps.egress).then((results) => {
          preflightResults = results;
          logPreflight(log, results);
        });
      } else {
        log.info({ enabled: false }, 'preflight checks disabled');
      }
      if (config.caFiles.length > 0) {
        // Passing `ca` replaces Node's store, so the system roots and NODE_EXTRA_CA_CERTS go in too.
        const files = [...config.caFiles, ...(env.NODE_EXTRA_CA_CERTS ? [env.NODE_EXTRA_CA_CERTS] : [])];
        const pems = await Promise.all(files.map((f) => readFile(f, 'utf8')));
        tunnelTls = { ...tunnelTls, ca: [...rootCertificates, ...pems] };
        proxyAgent = createProxyAgent(config.serverUrl, env, tunnelTls);
      }
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
      stopping ??= (async () => {
        const started = Date.now();
        const deadline = started + config.drainGraceMs;
        log.info({ reason, graceMs: config.drainGraceMs, inflight: relay.inflight, webhooks: local.webhooksInflight }, 'broker client draining');
        draining = true;
        metrics.ready.set(0);
        for (const t of tunnels) {
          t.drain();
          if (!t.isOpen) continue;
          // Tells the server to stop routing new requests here: `client-event` client-shutdown
          // (the real client's telemetry event; our server drains the connection, the real one
          // logs it) and `terminate` (ours drains; the real one tells its dispatcher).
          t.emitAndFlush('client-event', { ts: Date.now(), event: { type: 'client-shutdown', reason: shutdownReason(reason) } }).catch(() => undefined);
          t.emitAndFlush('terminate', { signal: reason }).catch(() => undefined);
        }
        // Tunnels stay open until every relay is answered: acks and webhooks need them, and a
        // server (ours) counts a request whose tunnel closed as failed even when its streamed
        // answer is still uploading. The `terminate` above keeps new requests away meanwhile.
        await waitUntil(() => local.webhooksInflight === 0 && tunnels.every((t) => t.ackInflight === 0), deadline);
        const settled = await relay.settle(Math.max(0, deadline - Date.now()));
        if (!settled) log.warn({ inflight: relay.inflight }, 'drain grace period over with relays still in flight');
        // Webhooks accepted during the drain still need their tunnel: refuse new ones, let those finish.
        closing = true;
        await waitUntil(() => local.webhooksInflight === 0, deadline);
        stopSignal.abort();
        await Promise.all(tunnels.map((t) => t.close()));
        if (allocator) await allocator.release();
        if (server) await closeServer(server);
        log.info({ ms: Date.now() - started }, 'broker client stopped');
      })();
      return stopping;
    },
  };
}

/** The capability that tells our server this is our client. */
export const CLIENT_CAPABILITY = 'ha-broker/1';

/** A label the real server's client-event sanitiser keeps (`[a-zA-Z0-9_-]{1,64}`). */
function shutdownReason(reason: string): string {
  const label = reason.toLowerCase().replace(/[^a-z0-9_-]/g, '_').slice(0, 64);
  return label || 'stop';
}

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
