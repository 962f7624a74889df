import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClientConfig } from '../config/client.js';
import type { Env } from '../config/env.js';
import { unsupportedSnykVariables } from '../config/unsupported-snyk-vars.js';
import type { Egress } from '../http/egress.js';
import { closeServer } from '../http/server-helpers.js';
import type { Logger } from '../observability/logger.js';
import type { Allocator } from './allocation.js';
import { INSECURE_DOWNSTREAM_WARNING } from './insecure-downstream.js';
import type { ClientMetrics } from './metrics.js';
import { logPreflight, runPreflightChecks, type PreflightCheck } from './preflight.js';
import type { Tunnel } from './tunnel.js';

/** Where the client is in its life: the local server, tunnels and relay read it, start and stop set it. */
export interface ClientLifecycle {
  /** SIGTERM came: not ready, tunnels take no new work. */
  draining: boolean;
  /** The drain is about to close the tunnels: from then on webhooks are refused. */
  closing: boolean;
  /** The last preflight results (/health/checks, later identifies). */
  preflight: PreflightCheck[];
}

/** The start's log lines about the configuration, and the preflight checks (never blocking the start). */
export function announceStart(config: ClientConfig, env: Env, deps: { logger: Logger; egress: Egress; lifecycle: ClientLifecycle }): void {
  const log = deps.logger;
  log.info({ enabled: config.haMode }, 'checking for HA mode');
  for (const { variable, reason } of unsupportedSnykVariables(env)) log.warn({ variable, reason }, `${variable} is a snyk-broker variable that ha-broker does not implement; ignored`);
  if (config.insecureDownstream) log.warn({}, INSECURE_DOWNSTREAM_WARNING);
  if (config.resBodyUrlSub) log.info({ url: config.resBodyUrlSub }, 'RES_BODY_URL_SUB: rewriting this URL in JSON answers to point through the broker');
  if (config.logEnableBody) log.info({ logLevel: config.logLevel }, 'LOG_ENABLE_BODY: relayed request and response bodies are logged at debug level');
  if (config.disableSnippets) log.info({ snippets: true }, 'Disabling snippets rules for Code/Git.');
  if (config.preflightEnabled) {
    // Never blocks the start: results land in /health/checks and later identifies.
    void runPreflightChecks(config, deps.egress).then((results) => {
      deps.lifecycle.preflight = results;
      logPreflight(log, results);
    });
  } else {
    log.info({ enabled: false }, 'preflight checks disabled');
  }
}

/**
 * After `terminate`, requests the server sent before it read it are still on the wire: the drain
 * waits until none has arrived for this long (a round trip and more on a cluster network).
 */
const QUIET_MS = 300;

async function waitUntil(check: () => boolean, deadline: number): Promise<boolean> {
  while (!check()) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

/** A label the real server's client-event sanitiser keeps (`[a-zA-Z0-9_-]{1,64}`). */
function shutdownReason(reason: string): string {
  const label = reason.toLowerCase().replace(/[^a-z0-9_-]/g, '_').slice(0, 64);
  return label || 'stop';
}

export interface DrainParts {
  logger: Logger;
  metrics: ClientMetrics;
  lifecycle: ClientLifecycle;
  tunnels: readonly Tunnel[];
  relay: { readonly inflight: number; readonly lastEventAt: number; settle(ms: number): Promise<boolean> };
  local: { readonly webhooksInflight: number };
  allocator: Allocator | undefined;
  server: () => Server | undefined;
}

/**
 * The SIGTERM path: tell the servers to route nothing new here, let relays and webhooks finish
 * within BROKER_CLIENT_DRAIN_GRACE_MS (their tunnels stay open for them), then close the
 * tunnels, give the dispatcher slot back and close the local server.
 */
export async function drainClient(config: Pick<ClientConfig, 'drainGraceMs'>, p: DrainParts, reason: string): Promise<void> {
  const { logger: log, lifecycle, tunnels, relay, local } = p;
  const started = Date.now();
  const deadline = started + config.drainGraceMs;
  log.info({ reason, graceMs: config.drainGraceMs, inflight: relay.inflight, webhooks: local.webhooksInflight }, 'broker client draining');
  lifecycle.draining = true;
  p.metrics.ready.set(0);
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
  await waitUntil(() => local.webhooksInflight === 0 && tunnels.every((t) => t.ackInflight === 0) && Date.now() - Math.max(relay.lastEventAt, started) >= QUIET_MS, deadline);
  const settled = await relay.settle(Math.max(0, deadline - Date.now()));
  if (!settled) log.warn({ inflight: relay.inflight }, 'drain grace period over with relays still in flight');
  // Webhooks accepted during the drain still need their tunnel: refuse new ones, let those finish.
  lifecycle.closing = true;
  await waitUntil(() => local.webhooksInflight === 0, deadline);
  await Promise.all(tunnels.map((t) => t.close()));
  // A request that arrived as the tunnels closed still uploads its answer (the server waits for it).
  await relay.settle(Math.max(0, deadline - Date.now()));
  if (p.allocator) await p.allocator.release();
  const server = p.server();
  if (server) await closeServer(server);
  log.info({ ms: Date.now() - started }, 'broker client stopped');
}
