import { createHash } from 'node:crypto';

/**
 * Rendezvous (highest random weight) hashing: every (token, server) pair gets a fixed
 * pseudo-random weight, and a token prefers servers by descending weight. Adding or removing
 * one server only moves the clients that were on it, and every dispatcher replica computes
 * the same order without talking to the others.
 */
export function rendezvousWeight(hashedToken: string, serverId: string): bigint {
  const digest = createHash('sha256').update(hashedToken).update('\n').update(serverId).digest();
  return digest.readBigUInt64BE(0);
}

/** Server ids in the token's preference order (highest weight first; ties broken by id). */
export function rankServers(hashedToken: string, serverIds: readonly string[]): string[] {
  return serverIds
    .map((id) => ({ id, w: rendezvousWeight(hashedToken, id) }))
    .sort((a, b) => (a.w === b.w ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : a.w > b.w ? -1 : 1))
    .map((x) => x.id);
}

/**
 * Picks the server for one more client of a token: the most preferred server not used by
 * the token's other clients; when every candidate is used, the least used one (preference
 * order breaks ties). `usage` counts the token's other clients per server id.
 */
export function chooseServer(hashedToken: string, candidates: readonly string[], usage: ReadonlyMap<string, number>): string | undefined {
  let best: string | undefined;
  let bestUse = Infinity;
  for (const id of rankServers(hashedToken, candidates)) {
    const use = usage.get(id) ?? 0;
    if (use < bestUse) {
      best = id;
      bestUse = use;
      if (use === 0) break;
    }
  }
  return best;
}
