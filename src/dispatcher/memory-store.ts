import type { DispatcherStore, VersionedTokenState } from './store.js';
import type { ServerPatch, ServerRecord, TokenState } from './types.js';
import { parseJson } from '../json.js';

/**
 * Runs `fn` now and settles with its outcome: a throw becomes a rejection, as it would in an
 * async method (the store interface is async; this one has nothing to wait for).
 */
function settle<T>(fn: () => T): Promise<T> {
  return new Promise<T>((resolve) => resolve(fn()));
}

/** The default store: one process, no dependencies. State is copied in and out so callers never share objects. */
export function createMemoryStore(): DispatcherStore {
  const servers = new Map<string, Record<string, string | number>>();
  const tokens = new Map<string, { version: number; json: string }>();

  return {
    kind: 'memory',
    patchServer: (id, set: ServerPatch, unset = [], setIfMissing: ServerPatch = {}) =>
      settle(() => {
        const rec = servers.get(id) ?? {};
        for (const [k, v] of Object.entries(setIfMissing)) if (v !== undefined && !(k in rec)) rec[k] = v;
        for (const [k, v] of Object.entries(set)) if (v !== undefined) rec[k] = v;
        for (const k of unset) delete rec[k];
        servers.set(id, rec);
      }),
    getServers: () => settle(() => [...servers.entries()].map(([id, fields]) => toServerRecord(id, fields))),
    deleteServer: (id) =>
      settle(() => {
        servers.delete(id);
      }),
    readToken: (hashedToken) =>
      settle((): VersionedTokenState => {
        const cur = tokens.get(hashedToken);
        if (!cur) return { state: undefined, version: '0' };
        return { state: parseJson(cur.json) as TokenState, version: String(cur.version) };
      }),
    writeToken: (hashedToken, version, state) =>
      settle(() => {
        const cur = tokens.get(hashedToken);
        if (String(cur?.version ?? 0) !== version) return false;
        if (state === undefined) tokens.delete(hashedToken);
        else tokens.set(hashedToken, { version: (cur?.version ?? 0) + 1, json: JSON.stringify(state) });
        return true;
      }),
    listTokens: () => Promise.resolve([...tokens.keys()]),
    ping: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

/** Stored fields (strings in Redis, numbers in memory) to a typed record. */
export function toServerRecord(id: string, fields: Record<string, string | number | undefined>): ServerRecord {
  const num = (k: string): number | undefined => {
    const v = fields[k];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  };
  const str = (k: string): string | undefined => {
    const v = fields[k];
    return v === undefined || v === '' ? undefined : String(v);
  };
  return {
    id,
    peerUrl: str('peerUrl'),
    publicUrl: str('publicUrl'),
    healthCheckLink: str('healthCheckLink'),
    firstSeen: num('firstSeen') ?? num('registeredAt') ?? num('lastSeen') ?? 0,
    registeredAt: num('registeredAt'),
    lastSeen: num('lastSeen') ?? 0,
    lastReport: num('lastReport'),
    discoveredAt: num('discoveredAt'),
    stoppingSince: num('stoppingSince'),
    downSince: num('downSince'),
  };
}
