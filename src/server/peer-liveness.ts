import type { Egress } from '../http/egress.js';
import { TimedMarks } from './timed-marks.js';

export interface PeerLivenessOptions {
  /** A probe (GET <peer>/livez) unanswered this long counts as failed. */
  timeoutMs: number;
  /** A peer that failed a probe goes last in the order of targets for this long (unless a probe passes again). */
  suspectForMs?: number;
}

/**
 * Is a peer server answering at all? A forward that waits for a long time may just be a slow
 * origin; a peer whose /livez does not answer within the probe timeout is hung (SIGSTOP, a
 * starved node) or out of reach. Probes of one peer are shared: many waiting forwards ask once.
 */
export function createPeerLiveness(options: PeerLivenessOptions, deps: { egress: Egress }) {
  const inFlight = new Map<string, Promise<boolean>>();
  const suspectForMs = options.suspectForMs ?? 5000;
  const suspects = new TimedMarks(suspectForMs);

  async function probeOnce(peerUrl: string): Promise<boolean> {
    try {
      const res = await deps.egress.request(`${peerUrl}/livez`, { method: 'GET', signal: AbortSignal.timeout(options.timeoutMs) });
      await res.body.dump().catch(() => undefined);
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  return {
    /** Probes the peer (joining a probe already on its way); false: hung or unreachable. */
    probe(peer: { serverId: string; peerUrl: string }): Promise<boolean> {
      let p = inFlight.get(peer.serverId);
      if (!p) {
        p = probeOnce(peer.peerUrl).then((alive) => {
          inFlight.delete(peer.serverId);
          if (alive) suspects.clear(peer.serverId);
          else suspects.mark(peer.serverId);
          return alive;
        });
        inFlight.set(peer.serverId, p);
      }
      return p;
    },
    /** Failed its last probe recently: other targets go first. */
    isSuspect(serverId: string, now = Date.now()): boolean {
      return suspects.has(serverId, now);
    },
  };
}

export type PeerLiveness = ReturnType<typeof createPeerLiveness>;
