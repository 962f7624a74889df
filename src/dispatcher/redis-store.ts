import { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import { silentLogger } from '../observability/logger.js';
import { toServerRecord } from './memory-store.js';
import { StoreError, type DispatcherStore, type VersionedTokenState } from './store.js';
import type { ServerPatch, ServerRecord, TokenState } from './types.js';
import { parseJson } from '../json.js';

/**
 * Compare-and-set of a token's state: write only if the version is still the one read, and
 * keep the token index in step within the same atomic script (so a concurrent delete and
 * re-create can never leave a token out of the index).
 * KEYS: token hash, token index set. ARGV: expected version, JSON state ('' deletes), token.
 */
const CAS_SCRIPT = `
local v = redis.call('HGET', KEYS[1], 'v')
if not v then v = '0' end
if v ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[3])
else
  redis.call('HSET', KEYS[1], 'v', tostring(tonumber(v) + 1), 's', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[3])
end
return 1
`;

export interface RedisStoreOptions {
  url: string;
  keyPrefix: string;
  logger?: Logger;
  /** Per-command deadline, so a hung Redis becomes a 503 rather than a hung request. */
  commandTimeoutMs?: number;
}

/** The client, logging once when Redis becomes unreachable and once when it is back. */
function connectRedis(options: RedisStoreOptions, log: Logger): Redis {
  const redis = new Redis(options.url, {
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    commandTimeout: options.commandTimeoutMs ?? 5_000,
    // Reconnect forever with a capped delay; requests fail fast meanwhile (maxRetriesPerRequest).
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    lazyConnect: false,
  });
  let healthy = true;
  redis.on('error', (err: Error) => {
    if (healthy) log.warn({ err: err.message }, 'redis unreachable');
    healthy = false;
  });
  redis.on('ready', () => {
    if (!healthy) log.info('redis reachable again');
    healthy = true;
  });
  return redis;
}

/** The shared store for several dispatcher replicas (ioredis). */
export function createRedisStore(options: RedisStoreOptions): DispatcherStore {
  const log = options.logger ?? silentLogger();
  const p = options.keyPrefix;
  const redis = connectRedis(options, log);

  const serverKey = (id: string) => `${p}server:${id}`;
  const serversKey = `${p}servers`;
  const tokenKey = (t: string) => `${p}token:${t}`;
  const tokensKey = `${p}tokens`;

  async function wrap<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new StoreError(`redis ${what} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  return {
    kind: 'redis',
    patchServer: (id, set: ServerPatch, unset = [], setIfMissing: ServerPatch = {}) =>
      wrap('patchServer', async () => {
        const m = redis.multi();
        for (const [k, v] of Object.entries(setIfMissing)) if (v !== undefined) m.hsetnx(serverKey(id), k, String(v));
        const fields = Object.entries(set).filter(([, v]) => v !== undefined).flatMap(([k, v]) => [k, String(v)]);
        if (fields.length > 0) m.hset(serverKey(id), ...fields);
        if (unset.length > 0) m.hdel(serverKey(id), ...unset);
        m.sadd(serversKey, id);
        const res = await m.exec();
        const failed = res?.find(([e]) => e);
        if (!res || failed) throw failed?.[0] ?? new Error('transaction aborted');
      }),
    getServers: () =>
      wrap('getServers', async () => {
        const ids = await redis.smembers(serversKey);
        if (ids.length === 0) return [];
        const pipe = redis.pipeline();
        for (const id of ids) pipe.hgetall(serverKey(id));
        const res = (await pipe.exec()) ?? [];
        const out: ServerRecord[] = [];
        ids.forEach((id, i) => {
          const [err, fields] = res[i] ?? [];
          if (err) throw err;
          if (fields && Object.keys(fields).length > 0) out.push(toServerRecord(id, fields as Record<string, string>));
        });
        return out;
      }),
    deleteServer: (id) =>
      wrap('deleteServer', async () => {
        await redis.multi().del(serverKey(id)).srem(serversKey, id).exec();
      }),
    readToken: (t) =>
      wrap('readToken', async (): Promise<VersionedTokenState> => {
        const [v, s] = await redis.hmget(tokenKey(t), 'v', 's');
        return { version: v ?? '0', state: s ? (parseJson(s) as TokenState) : undefined };
      }),
    writeToken: (t, version, state) =>
      wrap('writeToken', async () => {
        const ok = await redis.eval(CAS_SCRIPT, 2, tokenKey(t), tokensKey, version, state === undefined ? '' : JSON.stringify(state), t);
        return ok === 1;
      }),
    listTokens: () => wrap('listTokens', () => redis.smembers(tokensKey)),
    ping: () =>
      wrap('ping', async () => {
        await redis.ping();
      }),
    async close() {
      try {
        await redis.quit();
      } catch {
        redis.disconnect();
      }
    },
  };
}
