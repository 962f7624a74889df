import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { describeError } from '../http/errors.js';
import { sendFailure } from '../http/server-helpers.js';
import { FAILURES } from '../protocol/failures.js';
import { getEndpoints, healthCheckById, reloadFilters, type GetEndpoint, type OperatorEndpointDeps } from './operator-endpoints.js';
import { WebhookRelay, type WebhookRelayDeps } from './webhook-relay.js';

export interface LocalServerDeps extends OperatorEndpointDeps, WebhookRelayDeps {
  /** Reloads the accept rules from the ACCEPT file (POST /filters). */
  reloadFilters?: () => Promise<void>;
}

/** What a request can be routed to, built once per server. */
interface LocalRoutes {
  deps: LocalServerDeps;
  endpoints: ReadonlyMap<string, GetEndpoint>;
  webhooks: WebhookRelay;
}

/** One request: an operator endpoint when the path names one, else a webhook to relay. */
async function route({ deps, endpoints, webhooks }: LocalRoutes, req: IncomingMessage, res: ServerResponse, url: string, path: string): Promise<unknown> {
  const method = req.method ?? 'GET';
  if (method === 'GET') {
    const endpoint = endpoints.get(path);
    if (endpoint) return endpoint(res);
    if (healthCheckById(deps, res, path)) return;
  }
  if (method === 'POST' && path === '/filters' && deps.reloadFilters) return reloadFilters(res, deps.reloadFilters);
  return webhooks.relay(req, res, url);
}

/**
 * The client's local HTTP server: health endpoints for operators and Kubernetes, and the
 * webhook relay (requests allowed by the `public` rules go to the broker server over a tunnel).
 */
export function createLocalHandler(deps: LocalServerDeps) {
  const log = deps.logger;
  const webhooks = new WebhookRelay(deps);
  const routes: LocalRoutes = { deps, endpoints: getEndpoints(deps), webhooks };

  const handler: RequestListener = (req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?')[0];
    route(routes, req, res, url, path).catch((err) => {
      log.error({ url: path, err: describeError(err) }, 'local request failed');
      if (!res.headersSent) sendFailure(res, FAILURES.INTERNAL_ERROR, { ok: false });
      else res.destroy();
    });
  };

  return {
    handler,
    get webhooksInflight(): number {
      return webhooks.inflight;
    },
  };
}
