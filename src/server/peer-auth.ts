import type { IncomingMessage } from 'node:http';
import { FORWARDED_HEADER, INTERNAL_SECRET_HEADER, secretMatches } from '../http/forward.js';

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
