import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendFailure } from '../../http/server-helpers.js';
import { FAILURES } from '../../protocol/failures.js';
import { admitPeerRequest, logRefusedPeer } from '../peer-auth.js';
import type { ServerParts } from './context.js';

/** The route groups the router hands requests to, each built once by createServer. */
export interface RouteGroups {
  platform: { broker(req: IncomingMessage, res: ServerResponse, rawUrl: string): Promise<void>; service(req: IncomingMessage, res: ServerResponse, rawUrl: string): Promise<void> | void };
  tunnel: { request(req: IncomingMessage, res: ServerResponse, rawUrl: string): Promise<void> };
  responseData(req: IncomingMessage, res: ServerResponse, path: string, rawUrl: string): Promise<void>;
  /** Mandatory auth only: POST /hidden/brokers/connections/<id>/auth/refresh. */
  authRefresh?(req: IncomingMessage, res: ServerResponse, path: string, rawUrl: string): Promise<void>;
  status(res: ServerResponse, path: string): Promise<void>;
}

/**
 * Every HTTP request of the server, by path prefix: tunnels (/primus/), the platform API
 * (/broker/, /service/), answer uploads (/response-data/), then the read-only endpoints. A
 * claim to come from a peer is checked first, for every route. Under mandatory auth answer
 * uploads come to /hidden/brokers/response-data/ instead (/response-data/ is not served, as in
 * snyk-broker, so no upload escapes the credential check) and auth refreshes are taken.
 */
export function createRouter(parts: Pick<ServerParts, 'config' | 'logger' | 'lifecycle'>, routes: RouteGroups) {
  const { config, logger, lifecycle } = parts;
  const authMode = config.mandatoryAuth !== undefined;
  const responseDataPrefix = authMode ? '/hidden/brokers/response-data/' : '/response-data/';
  return async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    // indexOf, not split: no array per request.
    const q = rawUrl.indexOf('?');
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    // Draining: each answer closes its keep-alive connection, so no caller (a peer forwarding a
    // POST) writes its next request into a socket we are about to close.
    if (lifecycle.draining) res.setHeader('connection', 'close');
    if (!admitPeerRequest(req, config.internalSecret)) {
      logRefusedPeer(logger, req, 'request');
      req.resume();
      return sendFailure(res, FAILURES.INTERNAL_SECRET_REQUIRED, { ok: false, message: 'a request forwarded by a peer server needs a valid x-broker-internal-secret' });
    }
    if (path.startsWith('/primus/')) return routes.tunnel.request(req, res, rawUrl);
    if (path.startsWith('/broker/')) return routes.platform.broker(req, res, rawUrl);
    if (path.startsWith(responseDataPrefix)) return routes.responseData(req, res, path, rawUrl);
    if (routes.authRefresh && path.startsWith('/hidden/brokers/connections/')) return routes.authRefresh(req, res, path, rawUrl);
    if (path.startsWith('/service/')) return routes.platform.service(req, res, rawUrl);
    req.resume();
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendFailure(res, FAILURES.NOT_FOUND, { ok: false });
    return routes.status(res, path);
  };
}
