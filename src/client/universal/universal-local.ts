import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { describeError } from '../../http/errors.js';
import { sendFailure, sendJson } from '../../http/server-helpers.js';
import type { Egress } from '../../http/egress.js';
import type { Logger } from '../../observability/logger.js';
import { FAILURES } from '../../protocol/failures.js';
import { maskToken } from '../../protocol/token.js';
import { selectWebhookType } from '../../config/universal-types.js';
import type { ClientMetrics } from '../metrics.js';
import { connectionChecks } from '../operator-endpoints.js';
import type { RunningConnection } from './connection-registry.js';

export interface UniversalLocalDeps {
  logger: Logger;
  metrics: ClientMetrics;
  egress: Egress;
  connections: () => Iterable<RunningConnection>;
  healthcheckPath: string;
  systemcheckPath: string;
  isDraining: () => boolean;
  isReady: () => boolean;
}

/** One entry per tunnel, as Snyk's Universal /healthcheck answers (snyk/broker#1039): masked identifier, friendly name. */
function healthcheck(deps: UniversalLocalDeps, res: ServerResponse): void {
  const entries = [];
  for (const { plan, connection } of deps.connections()) {
    for (const t of connection.tunnels) {
      entries.push({
        ok: t.isOpen,
        websocketConnectionOpen: t.isOpen,
        brokerServerUrl: t.displayUrl || `${connection.config.serverUrl}/?connection_role=${t.role}`,
        version: connection.config.wireVersion,
        transport: connection.config.transport,
        identifier: maskToken(plan.identifier),
        friendlyName: plan.name,
        type: plan.filterType,
      });
    }
  }
  sendJson(res, entries.some((e) => e.ok) ? 200 : 500, entries);
}

/** Each connection's checks (as a classic client's /systemcheck), labelled with the connection: 200 when every one passes. */
async function systemcheck(deps: UniversalLocalDeps, res: ServerResponse): Promise<void> {
  const all = [];
  let ok = true;
  for (const { plan, connection } of deps.connections()) {
    const checked = await connectionChecks({ config: connection.config, egress: deps.egress, logger: deps.logger, githubApp: connection.appTokens }, 'no validation request for this connection type');
    ok &&= checked.ok;
    for (const r of checked.results) all.push({ connection: plan.name, ...r });
  }
  sendJson(res, ok ? 200 : 500, all);
}

/** `/webhook/<type>/...` goes to the first connection of a matching type with an open tunnel (Snyk's fallbacks). */
function webhookTarget(deps: UniversalLocalDeps, path: string): RunningConnection | undefined {
  const pathType = /^\/webhook\/([^/]+)\//.exec(path)?.[1];
  if (!pathType) return undefined;
  const open = [...deps.connections()].filter((c) => c.connection.tunnels.some((t) => t.isOpen));
  const type = selectWebhookType(pathType, open.map((c) => c.plan.filterType));
  return open.find((c) => c.plan.filterType === type);
}

async function route(deps: UniversalLocalDeps, req: IncomingMessage, res: ServerResponse, path: string): Promise<unknown> {
  if (req.method === 'GET') {
    if (path === deps.healthcheckPath) return healthcheck(deps, res);
    if (path === deps.systemcheckPath) return systemcheck(deps, res);
    if (path === '/livez') return sendJson(res, 200, { ok: true });
    if (path === '/readyz') return deps.isReady() ? sendJson(res, 200, { ok: true }) : sendFailure(res, deps.isDraining() ? FAILURES.CLIENT_DRAINING : FAILURES.NOT_READY, { ok: false });
    if (path === '/metrics') {
      const text = await deps.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
      return res.end(text);
    }
  }
  const target = webhookTarget(deps, path);
  if (target) return target.connection.local.handler(req, res);
  req.resume();
  return sendFailure(res, FAILURES.UNKNOWN_REQUEST_TYPE, { ok: false, msg: 'Unknown request type: no open connection of a matching type' });
}

/**
 * The Universal client's local HTTP server: health for every tunnel of every connection, and
 * webhooks relayed over a connection of the type their path names.
 */
export function createUniversalLocalHandler(deps: UniversalLocalDeps): RequestListener {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    route(deps, req, res, path).catch((err) => {
      deps.logger.error({ url: path, err: describeError(err) }, 'local request failed');
      if (!res.headersSent) sendFailure(res, FAILURES.INTERNAL_ERROR, { ok: false });
      else res.destroy();
    });
  };
}
