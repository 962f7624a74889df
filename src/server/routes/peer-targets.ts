import type { IncomingMessage, ServerResponse } from 'node:http';
import { forwardToPeer } from '../peer-forward.js';
import type { PeerRoute, PeerRouting } from '../peer-routing.js';
import { IDEMPOTENT_METHODS } from '../platform-request.js';
import type { FallbackResult } from '../relay.js';
import type { ServerParts } from './context.js';
import type { PlatformRequest } from './platform-intake.js';

/*
 * A platform request sent on to peer servers holding tunnels of its token (HA mode), in the
 * order the weighted round robin chose, a hung peer hedged; and the relay's last resort.
 */

type PeerTargetParts = Pick<ServerParts, 'config' | 'logger' | 'egress' | 'metrics' | 'liveness' | 'forwards'>;

/** Tries the peers in `targets` until one answers ('local' entries stop the walk when `stopAtLocal`); why each could not. */
export async function forwardInOrder(parts: PeerTargetParts, req: IncomingMessage, res: ServerResponse, p: PlatformRequest, targets: Array<'local' | PeerRoute>, stopAtLocal: boolean): Promise<FallbackResult> {
  const { config, logger, egress, metrics, liveness, forwards } = parts;
  const why: string[] = [];
  // A peer that just missed a probe (hung?) goes last: this server and the others first.
  const now = Date.now();
  const suspect = (t: 'local' | PeerRoute) => t !== 'local' && liveness !== undefined && liveness.isSuspect(t.serverId, now);
  const ordered = [...targets.filter((t) => !suspect(t)), ...targets.filter(suspect)];
  for (const target of ordered) {
    if (target === 'local') {
      if (stopAtLocal) break;
      continue;
    }
    const hedge = liveness ? { afterMs: config.probeDelayMs, probe: () => liveness.probe(target) } : undefined;
    const init = { rawUrl: p.rawUrl, body: p.body, requestId: p.requestId, selfServerId: config.serverId, timeoutMs: config.requestTimeoutMs + 10_000, idempotent: IDEMPOTENT_METHODS.has(p.method), internalSecret: config.internalSecret, hedge };
    const forwarding = forwardToPeer(target, req, res, init, { egress, logger });
    forwards.add(forwarding);
    const result = await forwarding.finally(() => forwards.delete(forwarding));
    metrics.peerForwards.inc({ outcome: result.outcome });
    if (result.outcome === 'answered') return { answered: true };
    if (result.hedged) metrics.relayHedges.inc({ target: 'peer' });
    why.push(result.why);
  }
  return { answered: false, why: why.length ? `peers tried: ${why.join('; ')}` : 'no peer holds a tunnel of this token' };
}

/** The relay's last resort: the peers known now, then those a routing refresh finds. */
export function peerFallback(parts: PeerTargetParts, req: IncomingMessage, res: ServerResponse, p: PlatformRequest, peers: PeerRouting): () => Promise<FallbackResult> {
  return async () => {
    const known = peers.peersFor(p.token);
    const first = known.length ? await forwardInOrder(parts, req, res, p, peers.order(p.token, 0, known), false) : undefined;
    if (first?.answered) return first;
    // The cache may be older than the peers' clients (one just connected elsewhere): look again before giving up.
    const fresh = (await peers.peersAfterRefresh(p.token)).filter((x) => !known.some((k) => k.serverId === x.serverId));
    if (fresh.length === 0 && first) return first;
    const second = await forwardInOrder(parts, req, res, p, peers.order(p.token, 0, fresh), false);
    if (second.answered || !first) return second;
    return { answered: false, why: `${first.why}; after a routing refresh: ${second.why}` };
  };
}

