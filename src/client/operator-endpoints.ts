import type { ServerResponse } from 'node:http';
import type { Egress } from '../http/egress.js';
import { sendFailure, sendJson } from '../http/server-helpers.js';
import type { Logger } from '../observability/logger.js';
import { FAILURES } from '../protocol/failures.js';
import type { ClientConfig } from '../config/client.js';
import type { ClientMetrics } from './metrics.js';
import type { PreflightCheck } from './preflight.js';
import type { Tunnel } from './tunnel.js';
import { runSystemcheck } from './systemcheck.js';
import { checkGithubApp } from './github-app/app-systemcheck.js';
import type { InstallationTokens } from './github-app/installation-token.js';

export interface OperatorEndpointDeps {
  config: ClientConfig;
  logger: Logger;
  egress: Egress;
  metrics: ClientMetrics;
  tunnels: readonly Tunnel[];
  acceptDocument: () => unknown;
  isDraining: () => boolean;
  isReady: () => boolean;
  preflight: () => PreflightCheck[];
  /** GitHub App mode: /systemcheck proves its installation token works. */
  githubApp?: InstallationTokens;
}

/** A GET endpoint of the local server, by exact path. */
export type GetEndpoint = (res: ServerResponse) => unknown;

const HEALTH_CHECK_PREFIX = '/health/checks/';

function healthcheck(deps: OperatorEndpointDeps, res: ServerResponse): void {
  const { config } = deps;
  const entries = deps.tunnels.map((t) => ({
    ok: t.isOpen,
    websocketConnectionOpen: t.isOpen,
    brokerServerUrl: t.displayUrl || `${config.serverUrl}/?connection_role=${t.role}`,
    version: config.wireVersion,
    transport: config.transport,
  }));
  const anyOpen = entries.some((e) => e.ok);
  sendJson(res, anyOpen ? 200 : 500, entries.length === 1 ? entries[0] : entries);
}

/** What a connection's /systemcheck checks and answers; a Universal client runs it for each connection. */
export interface ConnectionCheckDeps {
  config: ClientConfig;
  egress: Egress;
  logger: Logger;
  githubApp?: InstallationTokens;
}

/**
 * A connection's checks: its validation requests and, with a GitHub App, the App's installation
 * token; `ok` when every one passes. `noValidation` is the entry when there is nothing to validate.
 */
export async function connectionChecks(deps: ConnectionCheckDeps, noValidation = 'BROKER_CLIENT_VALIDATION_URL is not set; nothing to validate'): Promise<{ ok: boolean; results: Array<Record<string, unknown>> }> {
  const { config } = deps;
  const validation = config.validation;
  const app = config.githubApp && deps.githubApp ? await checkGithubApp(config.githubApp, deps.githubApp, deps.egress, validation?.timeoutMs ?? 5000) : undefined;
  if (app && !app.ok) deps.logger.warn({ status: app.githubAppValidationUrlStatusCode, error: app.error }, 'systemcheck: the GitHub App token check failed');
  const appOk = !app || Boolean(app.ok);
  if (!validation) return { ok: appOk, results: app ? [app] : [{ ok: true, message: noValidation }] };
  const { ok, results } = await runSystemcheck({ validation, egress: deps.egress, logger: deps.logger, wireVersion: config.wireVersion, insecureDownstream: config.insecureDownstream });
  return { ok: ok && appOk, results: app ? [...results, app] : results };
}

async function systemcheck(deps: OperatorEndpointDeps, res: ServerResponse): Promise<void> {
  const { ok, results } = await connectionChecks(deps);
  sendJson(res, ok ? 200 : 500, results);
}

function readyz(deps: OperatorEndpointDeps, res: ServerResponse): void {
  if (deps.isReady()) sendJson(res, 200, { ok: true });
  else sendFailure(res, deps.isDraining() ? FAILURES.CLIENT_DRAINING : FAILURES.NOT_READY, { ok: false });
}

async function metricsText(deps: OperatorEndpointDeps, res: ServerResponse): Promise<void> {
  const text = await deps.metrics.registry.metrics();
  res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
  res.end(text);
}

/**
 * The health, readiness, metrics and filters endpoints for operators and Kubernetes, by path.
 * A configured path shadows a fixed one, as the first match did.
 */
export function getEndpoints(deps: OperatorEndpointDeps): ReadonlyMap<string, GetEndpoint> {
  const endpoints = new Map<string, GetEndpoint>();
  const add = (path: string, endpoint: GetEndpoint) => {
    if (!endpoints.has(path)) endpoints.set(path, endpoint);
  };
  add(deps.config.healthcheckPath, (res) => healthcheck(deps, res));
  add(deps.config.systemcheckPath, (res) => systemcheck(deps, res));
  add('/livez', (res) => sendJson(res, 200, { ok: true }));
  add('/readyz', (res) => readyz(deps, res));
  add('/metrics', (res) => metricsText(deps, res));
  add('/health/checks', (res) => sendJson(res, 200, deps.preflight()));
  add('/filters', (res) => sendJson(res, 200, deps.acceptDocument()));
  return endpoints;
}

/** `GET /health/checks/<id>`: one preflight check; false when the path is not one. */
export function healthCheckById(deps: OperatorEndpointDeps, res: ServerResponse, path: string): boolean {
  if (!path.startsWith(HEALTH_CHECK_PREFIX)) return false;
  const id = decodeURIComponent(path.slice(HEALTH_CHECK_PREFIX.length));
  const check = deps.preflight().find((c) => c.id === id);
  if (check) sendJson(res, 200, check);
  else sendFailure(res, FAILURES.UNKNOWN_CHECK, { ok: false, message: `no check ${id}` });
  return true;
}

/** `POST /filters`: reloads the accept rules from the ACCEPT file. */
export async function reloadFilters(res: ServerResponse, reload: () => Promise<void>): Promise<void> {
  try {
    await reload();
    return sendJson(res, 200, { ok: true, msg: 'Filters reloaded.' });
  } catch (err) {
    return sendFailure(res, FAILURES.FILTERS_RELOAD_FAILED, { ok: false, msg: (err as Error).message });
  }
}
