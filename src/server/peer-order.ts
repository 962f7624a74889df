import type { PeerRoute } from './peer-routing.js';

/** Smooth weighted round robin state per token: target → current weight. */
export type PeerOrderState = Map<string, Map<string, number>>;

/**
 * The order in which to try targets for one request: first the target chosen by smooth
 * weighted round robin over {this server: its ready tunnels, each peer: its tunnels}, then
 * the rest as fallbacks (this server first). 'local' stands for this server.
 */
export function orderTargets(wrr: PeerOrderState, token: string, localTunnels: number, peers: PeerRoute[]): Array<'local' | PeerRoute> {
  const targets: Array<{ key: string; weight: number; target: 'local' | PeerRoute }> = [];
  if (localTunnels > 0) targets.push({ key: 'local', weight: localTunnels, target: 'local' });
  for (const p of peers) targets.push({ key: p.serverId, weight: p.tunnels, target: p });
  if (targets.length === 0) return ['local'];
  let state = wrr.get(token);
  if (!state) {
    state = new Map();
    wrr.set(token, state);
  }
  for (const k of [...state.keys()]) if (!targets.some((t) => t.key === k)) state.delete(k);
  const total = targets.reduce((n, t) => n + t.weight, 0);
  let best = targets[0];
  for (const t of targets) {
    const cur = (state.get(t.key) ?? 0) + t.weight;
    state.set(t.key, cur);
    if (cur > (state.get(best.key) ?? 0)) best = t;
  }
  state.set(best.key, (state.get(best.key) ?? 0) - total);
  const rest = targets.filter((t) => t !== best).map((t) => t.target);
  rest.sort((a, b) => (a === 'local' ? -1 : b === 'local' ? 1 : 0));
  return [best.target, ...rest];
}
