import type { Agent } from 'node:http';
import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import type { ClientConfig, TunnelRole } from '../config/client.js';
import type { Env } from '../config/env.js';
import type { Egress } from '../http/egress.js';
import type { Logger } from '../observability/logger.js';
import { CLIENT_INSTANCE_METADATA, hashToken, type Reply } from '../protocol/index.js';
import type { Allocator } from './allocation.js';
import type { ClientFilters } from './client-filters.js';
import type { ClientMetrics } from './metrics.js';
import type { PlatformAuth } from './platform-auth.js';
import type { PreflightCheck } from './preflight.js';
import { createProxyAgent } from './proxy-agent.js';
import { Tunnel, type Placement } from './tunnel.js';

/** The capability that tells our server this is our client. */
export const CLIENT_CAPABILITY = 'ha-broker/1';

/** What the tunnels' websockets connect with: the proxy agent and TLS settings (CA files are read at start). */
export class TunnelSecurity {
  tls: { ca?: string[]; rejectUnauthorized?: boolean };
  agent: Agent | undefined;

  constructor(
    private readonly config: ClientConfig,
    private readonly env: Env,
  ) {
    this.tls = config.rejectUnauthorized ? {} : { rejectUnauthorized: false };
    this.agent = createProxyAgent(config.serverUrl, env, this.tls);
  }

  /** Passing `ca` replaces Node's store, so the system roots and NODE_EXTRA_CA_CERTS go in too. */
  async loadCaFiles(): Promise<void> {
    if (this.config.caFiles.length === 0) return;
    const files = [...this.config.caFiles, ...(this.env.NODE_EXTRA_CA_CERTS ? [this.env.NODE_EXTRA_CA_CERTS] : [])];
    const pems = await Promise.all(files.map((f) => readFile(f, 'utf8')));
    this.tls = { ...this.tls, ca: [...rootCertificates, ...pems] };
    this.agent = createProxyAgent(this.config.serverUrl, this.env, this.tls);
  }
}

/** The identify metadata (protocol.md §2.3): who we are, what we filter, how we are configured. */
export function identifyMetadataFor(config: ClientConfig, env: Env, instanceId: string, filters: ClientFilters, preflight: () => PreflightCheck[]) {
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
  return (role: TunnelRole): Record<string, unknown> => {
    const checks = preflight();
    return {
      // ha-broker/1 lets our server recognise our client (drain with server-close + 4001).
      capabilities: ['post-streams', CLIENT_CAPABILITY],
      clientId: config.clientId,
      [CLIENT_INSTANCE_METADATA]: instanceId,
      identifier: hashToken(config.token),
      ...(config.preflightEnabled && checks.length > 0 ? { preflightChecks: checks } : {}),
      version: config.wireVersion,
      clientConfig: clientConfigFlags,
      filters: filters.accept,
      role,
    };
  };
}

export interface ClientTunnelDeps {
  logger: Logger;
  egress: Egress;
  metrics: ClientMetrics;
  /** HA mode: where each attempt connects (else the configured BROKER_SERVER_URL). */
  allocator: Allocator | undefined;
  security: TunnelSecurity;
  /** Universal Broker: the handshake's OAuth bearer. */
  auth?: PlatformAuth;
  identifyMetadata: (role: TunnelRole) => Record<string, unknown>;
  onEvent: (t: Tunnel, name: string, args: unknown[], reply: Reply | undefined) => void;
  isReady: () => boolean;
}

/** The primary and the secondary tunnel of one client, wired to its allocator, relay and metrics. */
export function createClientTunnels(config: ClientConfig, deps: ClientTunnelDeps): Tunnel[] {
  const { logger, egress, metrics, allocator, security } = deps;
  const fixedPlacement: Placement = { serverUrl: config.serverUrl };
  return (['primary', 'secondary'] as TunnelRole[]).map(
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
        logger,
        transport: config.transport,
        egress,
        auth: deps.auth,
        agent: () => security.agent,
        tls: () => security.tls,
        placement: (signal) => (allocator ? allocator.placement(signal) : Promise.resolve(fixedPlacement)),
        identifyMetadata: deps.identifyMetadata,
        onEvent: deps.onEvent,
        onServerGone: (t, reason) => allocator?.invalidate(reason, t.allocation) ?? false,
        onStateChange: (t, state) => {
          metrics.tunnelsOpen.set({ role: t.role }, t.isOpen ? 1 : 0);
          if (state === 'ready') metrics.tunnelConnects.inc({ role: t.role });
          metrics.ready.set(deps.isReady() ? 1 : 0);
        },
      }),
  );
}
