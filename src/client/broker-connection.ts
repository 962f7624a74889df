import type { ClientConfig } from '../config/client.js';
import type { Env } from '../config/env.js';
import type { Egress } from '../http/egress.js';
import type { Logger, SecretScrubber } from '../observability/logger.js';
import { createAllocator, type Allocator } from './allocation.js';
import { ClientFilters } from './client-filters.js';
import { drainClient, type ClientLifecycle } from './client-lifecycle.js';
import { createClientTunnels, identifyMetadataFor, TunnelSecurity } from './client-tunnels.js';
import { createCommitSigner } from './commit-signing/commit-signer.js';
import { InstallationTokens, startInstallationTokens } from './github-app/installation-token.js';
import { createLocalHandler } from './local-server.js';
import type { ClientMetrics } from './metrics.js';
import type { PlatformAuth } from './platform-auth.js';
import { createRelay, type Relay } from './relay.js';
import type { ContextOverrides } from './relay-context.js';
import { createBodyUrlRewriter } from './res-body-url-sub.js';
import { createResponseWriter } from './response-writer.js';
import type { Tunnel } from './tunnel.js';

export interface BrokerConnectionDeps {
  logger: Logger;
  egress: Egress;
  metrics: ClientMetrics;
  /** Variables for ${VAR} in accept rules. */
  env: Env;
  /** The logger's scrubber, so credentials of reloaded rules are redacted too. */
  scrubber?: SecretScrubber;
  /** Where the client is in its life (shared by every connection of one process). */
  lifecycle: ClientLifecycle;
  /** Names this process among the pods sharing a BROKER_CLIENT_ID. */
  instanceId: string;
  /** Universal Broker: the OAuth bearer of Snyk's API on the handshake, uploads and allocation. */
  auth?: PlatformAuth;
  /** Universal Broker: what identify adds for this connection (universalBroker, deploymentId, type). */
  identifyExtras?: Record<string, unknown>;
  /** Universal Broker: the service command config/reload syncs the connections. */
  reloadConfig?: () => void;
  /** Universal Broker contexts: each one's configuration (its values over the connection's), or why it is off. */
  contexts?: ReadonlyMap<string, ClientConfig | string>;
}

/** A context's own parts: its rules, and its App tokens when it has an App. */
interface ContextParts {
  filters: ClientFilters;
  appTokens?: InstallationTokens;
  overrides: ContextOverrides;
}

function contextParts(config: ClientConfig, deps: BrokerConnectionDeps, log: Logger): ContextParts {
  const filters = new ClientFilters(config, { env: config.env, logger: log, scrubber: deps.scrubber });
  const appTokens = config.githubApp ? new InstallationTokens({ app: config.githubApp, egress: deps.egress, logger: log, scrubber: deps.scrubber }) : undefined;
  const overrides: ContextOverrides = { rules: () => filters.privateRules, vars: config.env, liveVars: appTokens, commitSigner: config.commitSigning && createCommitSigner(config.commitSigning) };
  return { filters, appTokens, overrides };
}

/**
 * One broker token's worth of client: its accept rules, a primary and a secondary tunnel (placed
 * by the dispatcher in HA mode), the relay of requests to origins, and its local endpoints
 * (health, webhooks). A classic client has one; a Universal Broker client one per connection.
 */
export interface BrokerConnection {
  readonly config: ClientConfig;
  readonly tunnels: readonly Tunnel[];
  readonly filters: ClientFilters;
  readonly relay: Relay;
  readonly local: ReturnType<typeof createLocalHandler>;
  readonly appTokens: InstallationTokens | undefined;
  isReady(): boolean;
  /** Reads the CA files and mints the first App token (a bad App fails here, before anything listens). */
  prepare(): Promise<void>;
  openTunnels(): void;
  /** Drains and closes this connection's tunnels (the local server is the caller's). */
  stop(reason: string): Promise<void>;
}

/** The dispatcher's allocation client (HA mode): asked for a placement before every tunnel attempt. */
function allocatorFor(config: ClientConfig, deps: BrokerConnectionDeps): Allocator | undefined {
  if (!config.haMode) return undefined;
  const { token, clientId, dispatcherBaseUrl, dispatcherUrlPrefix, clientLocation, wireVersion, serverUrl, trustServerUrl } = config;
  return createAllocator({
    egress: deps.egress,
    logger: deps.logger,
    ...{ token, clientId, dispatcherBaseUrl, dispatcherUrlPrefix, clientLocation, wireVersion, serverUrl, trustServerUrl },
    instanceId: deps.instanceId,
    auth: deps.auth,
    onOutcome: (outcome) => deps.metrics.allocations.inc({ outcome }),
  });
}

/** The request relay: the private rules, the one egress, and what a request may need on its way (App tokens, commit signing). */
function relayFor(config: ClientConfig, deps: BrokerConnectionDeps, parts: { filters: ClientFilters; appTokens?: InstallationTokens; contexts?: ReadonlyMap<string, ContextOverrides | string> }): Relay {
  const { filters } = parts;
  const log = deps.logger;
  return createRelay({
    rules: () => filters.privateRules,
    egress: deps.egress,
    writer: createResponseWriter({ egress: deps.egress, token: config.token, wireVersion: config.wireVersion, postTimeoutMs: config.postTimeoutMs, logger: log, auth: deps.auth }),
    logger: log,
    metrics: deps.metrics,
    wireVersion: config.wireVersion,
    maxAckResponseBytes: config.maxAckResponseBytes,
    removeXForwardedHeaders: config.removeXForwardedHeaders,
    vars: deps.env,
    reloadFilters: filters.reload,
    reloadConfig: deps.reloadConfig,
    contexts: parts.contexts,
    tunnelAnswers: config.tunnelAnswers,
    tunnelStreams: config.tunnelStreams,
    insecureDownstream: config.insecureDownstream,
    bodyUrlRewriter: config.resBodyUrlSub ? createBodyUrlRewriter(config.resBodyUrlSub, config.token) : undefined,
    logBodies: config.logEnableBody,
    liveVars: parts.appTokens,
    commitSigner: config.commitSigning && createCommitSigner(config.commitSigning),
  });
}

/** Identify metadata with a Universal connection's additions (clientConfig's flags merged, not replaced). */
function withExtras(metadata: Record<string, unknown>, extras: Record<string, unknown>): Record<string, unknown> {
  const clientConfig = { ...(metadata.clientConfig as Record<string, unknown>), ...(extras.clientConfig as Record<string, unknown> | undefined) };
  return { ...metadata, ...extras, clientConfig };
}

/** Builds one connection from its configuration; nothing runs until prepare() and openTunnels(). */
export function createBrokerConnection(config: ClientConfig, deps: BrokerConnectionDeps): BrokerConnection {
  const log = deps.logger;
  const { metrics, env, lifecycle } = deps;
  const filters = new ClientFilters(config, { env, logger: log, scrubber: deps.scrubber });
  const allocator = allocatorFor(config, deps);
  const appTokens = config.githubApp ? new InstallationTokens({ app: config.githubApp, egress: deps.egress, logger: log, scrubber: deps.scrubber }) : undefined;
  const contexts = new Map<string, ContextParts | string>();
  for (const [id, c] of deps.contexts ?? []) contexts.set(id, typeof c === 'string' ? c : contextParts(c, deps, log.child({ context: id })));
  const relay = relayFor(config, deps, { filters, appTokens, contexts: deps.contexts ? new Map([...contexts].map(([id, c]) => [id, typeof c === 'string' ? c : c.overrides])) : undefined });
  const contextTokens = [...contexts.values()].flatMap((c) => (typeof c !== 'string' && c.appTokens ? [c.appTokens] : []));
  const security = new TunnelSecurity(config, env);
  const isReady = (): boolean => !lifecycle.draining && tunnels.some((t) => t.isReady);
  const identify = identifyMetadataFor(config, env, deps.instanceId, filters, () => lifecycle.preflight);
  const tunnels = createClientTunnels(config, {
    logger: log,
    egress: deps.egress,
    metrics,
    allocator,
    security,
    auth: deps.auth,
    identifyMetadata: deps.identifyExtras ? (role) => withExtras(identify(role), deps.identifyExtras!) : identify,
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
    config,
    tunnels,
    filters,
    relay,
    local,
    appTokens,
    isReady,
    async prepare() {
      await security.loadCaFiles();
      if (appTokens) await startInstallationTokens(appTokens);
      await Promise.all(contextTokens.map((t) => startInstallationTokens(t)));
    },
    openTunnels() {
      for (const t of tunnels) t.start();
    },
    stop(reason) {
      appTokens?.stop();
      for (const t of contextTokens) t.stop();
      stopping ??= drainClient(config, { logger: log, metrics, lifecycle, tunnels, relay, local, allocator, server: () => undefined }, reason);
      return stopping;
    },
  };
}
