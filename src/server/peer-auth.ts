import type { IncomingMessage } from 'node:http';
import { FORWARDED_HEADER, INTERNAL_SECRET_HEADER, secretMatches } from '../http/forward.js';
import type { Logger } from '../observability/logger.js';

/**
 * Checks a request that claims to be forwarded by a peer server (x-broker-forwarded-by): with
 * BROKER_INTERNAL_SECRET set it must carry the same secret, else anyone reaching a server could
 * pose as a peer (skip peer routing, reach sessions and answer uploads as one). Either way the
 * secret header is removed from the request, so nothing later relays it to a client or origin.
 * Returns false when the request must be refused with 401.
 */
export function admitPeerRequest(req: IncomingMessage, internalSecret: string | undefined): boolean {
  const given = req.headers[INTERNAL_SECRET_HEADER];
  delete req.headers[INTERNAL_SECRET_HEADER];
  if (internalSecret === undefined || req.headers[FORWARDED_HEADER] === undefined) return true;
  return secretMatches(given, internalSecret);
}

/** Headers every peer-to-peer hop carries: who forwarded it and, when configured, the secret. */
export function peerHopHeaders(selfServerId: string, internalSecret: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { [FORWARDED_HEADER]: selfServerId };
  if (internalSecret) headers[INTERNAL_SECRET_HEADER] = internalSecret;
  return headers;
}

/** The path's first segment of a URL (never the rest: a path may hold the token). */
export function routeOf(url: string | undefined): string {
  return (url ?? '/').split('?', 1)[0].split('/')[1] ?? '';
}

/** Logs a refused peer claim without the path (it holds the token) and without any header value but the claimed peer id. */
export function logRefusedPeer(logger: Logger, req: IncomingMessage, what: string): void {
  const by = req.headers[FORWARDED_HEADER];
  logger.warn({ method: req.method, route: routeOf(req.url), forwardedBy: String(by).slice(0, 128), remote: req.socket.remoteAddress }, `${what} claims to come from a peer server without the valid internal secret (BROKER_INTERNAL_SECRET): refused with 401`);
}
