import { describeError, EgressError } from '../../http/errors.js';
import { FORWARDED_HEADER } from '../../http/forward.js';
import type { IncomingMessage } from 'node:http';
import type { PeerServer } from '../peer-routing.js';
import { routeTunnelRequest } from '../tunnel-routing.js';
import type { ServerParts } from './context.js';

/**
 * Where tunnel traffic that belongs to another server goes (HA mode): the peer a /primus/
 * request names, and what a failed hop to it means for the next ones.
 */
export function createPeerHops(parts: Pick<ServerParts, 'config' | 'routing' | 'logger'>) {
  const { config, routing, logger } = parts;
  return {
    /**
     * The peer a /primus/ request must go to, or undefined to serve it here: a session's requests
     * go to the server named in its sid; a new tunnel goes to its `server_id` when that server is
     * live and reachable, else it is served here (a tunnel on the wrong server beats no tunnel).
     */
    async tunnelPeer(req: IncomingMessage, rawUrl: string): Promise<{ peer: PeerServer; session: boolean } | undefined> {
      if (!routing) return undefined;
      const route = routeTunnelRequest(rawUrl, req.headers[FORWARDED_HEADER], config.serverId);
      if (route.kind === 'local' || routing.isUnreachable(route.serverId)) return undefined;
      const peer = await routing.findServer(route.serverId);
      if (!peer) {
        logger.debug({ serverId: route.serverId, route: route.kind }, 'tunnel names a server the dispatcher does not list; serving it here');
        return undefined;
      }
      // A stopping server refuses new tunnels; its sessions still finish there.
      if (route.kind === 'allocated' && peer.status !== 'live') return undefined;
      return { peer, session: route.kind === 'session' };
    },
    /** A hop that could not reach the peer marks it unreachable for a while (not one the peer's side broke off). */
    failed(peer: PeerServer, err: unknown, what: string): void {
      if (!(err instanceof EgressError) || err.code !== 'DOWNSTREAM_ERROR') routing?.markUnreachable(peer.serverId);
      logger.warn({ peer: peer.serverId, error: describeError(err) }, `${what}: peer server unreachable`);
    },
  };
}

export type PeerHops = ReturnType<typeof createPeerHops>;
