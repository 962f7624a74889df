import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.js';
import { FAILURE_HEADER } from '../http/server-helpers.js';
import { FAILURES } from '../protocol/failures.js';
import { AllocationApi } from './allocation-api.js';
import type { Allocator } from './allocator.js';
import { ApiError, send, sendError } from './api-answers.js';
import { serveInternal, type InternalApiDeps } from './internal-api.js';
import type { DispatcherMetrics } from './metrics.js';
import { StoreError } from './store.js';

export interface ApiOptions {
  allocator: Allocator;
  metrics: DispatcherMetrics;
  logger: Logger;
  urlPrefix: string;
  internalSecret?: string;
  retryAfterSeconds: number;
  version: string;
  /** Resolves false (or throws) when the store is unreachable. */
  ready: () => Promise<boolean>;
}

interface Routes {
  o: ApiOptions;
  prefixParts: string[];
  allocation: AllocationApi;
  internal: InternalApiDeps;
}

type OpsRoute = (o: ApiOptions, res: ServerResponse) => void | Promise<void>;

function health(o: ApiOptions, res: ServerResponse): void {
  send(res, 200, { ok: true, version: o.version }, {}, 'application/json');
}

async function readiness(o: ApiOptions, res: ServerResponse): Promise<void> {
  let ok: boolean;
  try {
    ok = await o.ready();
  } catch {
    ok = false;
  }
  send(res, ok ? 200 : FAILURES.STORE_UNAVAILABLE.status, { ok, store: o.allocator.store.kind }, ok ? {} : { [FAILURE_HEADER]: FAILURES.STORE_UNAVAILABLE.reason }, 'application/json');
}

async function metricsText(o: ApiOptions, res: ServerResponse): Promise<void> {
  const text = await o.metrics.registry.metrics();
  res.writeHead(200, { 'content-type': o.metrics.registry.contentType });
  res.end(text);
}

/** Health and metrics endpoints (GET or HEAD), by path. */
const OPS_ROUTES: ReadonlyMap<string, OpsRoute> = new Map<string, OpsRoute>([
  ['/healthcheck', health],
  ['/livez', health],
  ['/readyz', readiness],
  ['/metrics', metricsText],
]);

/** The route table: health/metrics, the internal API, then the client allocation path under the prefix. */
async function route(r: Routes, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://dispatcher');
  const parts = url.pathname.split('/').filter(Boolean);
  const path = url.pathname.replace(/\/+$/, '') || '/';
  const ops = req.method === 'GET' || req.method === 'HEAD' ? OPS_ROUTES.get(path) : undefined;
  if (ops) return ops(r.o, res);
  if (parts[0] === 'internal') return serveInternal(r.internal, req, res, parts, url.searchParams);
  const rest = parts.slice(r.prefixParts.length);
  if (r.prefixParts.every((p, i) => parts[i] === p) && rest.length === 3 && rest[1] === 'connections') {
    return r.allocation.serve(req, res, rest[0], rest[2]);
  }
  req.resume();
  throw new ApiError(FAILURES.NOT_FOUND, 'Not found', `no route for ${req.method} ${url.pathname}`);
}

/** The path for a log line, hashed tokens shortened to their label. */
function shortPath(url: string | undefined): string {
  return (url ?? '').split('?')[0].replace(/[0-9a-f]{64}/gi, (h) => `${h.slice(0, 8)}…`);
}

/** Answers a request that failed: our refusals as they are, store trouble as 503, anything else as 500. */
function answerFailure(o: ApiOptions, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  const log = o.logger;
  if (err instanceof ApiError) {
    if ((err.status >= 500 && err.failure !== FAILURES.NO_LIVE_SERVER) || err.status === 401) log.warn({ method: req.method, path: shortPath(req.url), code: err.code }, err.detail);
    sendError(res, err);
    return;
  }
  if (err instanceof StoreError) {
    log.error({ err: err.message }, 'store unavailable');
    sendError(res, new ApiError(FAILURES.STORE_UNAVAILABLE, 'Dispatcher store unavailable', 'the dispatcher cannot reach its store; retry later', { 'retry-after': String(o.retryAfterSeconds) }));
    return;
  }
  log.error({ err }, 'unexpected error handling request');
  sendError(res, new ApiError(FAILURES.INTERNAL_ERROR, 'Internal error', 'unexpected dispatcher error'));
}

/**
 * The dispatcher's HTTP surface: the client-facing allocation API (protocol.md §6.2/6.5),
 * the server-facing registry API (§6.4), the routing lookup, and health/metrics.
 */
export function createApiHandler(o: ApiOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const deps = { allocator: o.allocator, metrics: o.metrics, logger: o.logger };
  const routes: Routes = {
    o,
    prefixParts: o.urlPrefix.split('/').filter(Boolean),
    allocation: new AllocationApi(deps),
    internal: { ...deps, internalSecret: o.internalSecret },
  };
  return (req, res) => {
    route(routes, req, res).catch((err: unknown) => answerFailure(o, req, res, err));
  };
}
