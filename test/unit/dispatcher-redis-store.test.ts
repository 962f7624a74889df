import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createRedisStore } from '../../src/dispatcher/redis-store.js';
import type { DispatcherStore } from '../../src/dispatcher/store.js';
import { StoreError } from '../../src/dispatcher/store.js';
import { startRedis, type RedisInstance } from '../support/redis.js';
import { allocationSuite } from './dispatcher-allocation-suite.js';

let redis: RedisInstance;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

// Each test gets its own key prefix on the shared redis-server, and two independent
// connections (two replicas) when it asks for a peer.
allocationSuite('redis', async () => {
  const keyPrefix = `test:${randomUUID()}:`;
  const stores: DispatcherStore[] = [createRedisStore({ url: redis.url, keyPrefix })];
  return {
    store: stores[0]!,
    peer: () => {
      const s = createRedisStore({ url: redis.url, keyPrefix });
      stores.push(s);
      return s;
    },
    cleanup: async () => {
      await Promise.all(stores.map((s) => s.close()));
    },
  };
});

describe('redis store specifics', () => {
  it('compare-and-set refuses a stale version and keeps the token index in step', async () => {
    const store = createRedisStore({ url: redis.url, keyPrefix: `cas:${randomUUID()}:` });
    try {
      const empty = await store.readToken('t1');
      assert.deepEqual(empty, { state: undefined, version: '0' });
      const state = { allocations: { c1: { serverId: '0', grantedAt: 1 } }, connections: {}, released: {} };
      assert.equal(await store.writeToken('t1', '0', state), true);
      assert.equal(await store.writeToken('t1', '0', state), false, 'stale version refused');
      const read = await store.readToken('t1');
      assert.equal(read.version, '1');
      assert.deepEqual(read.state, state);
      assert.deepEqual(await store.listTokens(), ['t1']);
      assert.equal(await store.writeToken('t1', '1', undefined), true);
      assert.deepEqual(await store.listTokens(), []);
      assert.deepEqual(await store.readToken('t1'), { state: undefined, version: '0' });
    } finally {
      await store.close();
    }
  });

  it('server patches: set, unset and set-if-missing', async () => {
    const store = createRedisStore({ url: redis.url, keyPrefix: `srv:${randomUUID()}:` });
    try {
      await store.patchServer('0', { lastSeen: 5, peerUrl: 'http://s0:1' }, [], { firstSeen: 5 });
      await store.patchServer('0', { lastSeen: 9 }, [], { firstSeen: 9, stoppingSince: 9 });
      await store.patchServer('0', {}, ['stoppingSince']);
      assert.deepEqual(await store.getServers(), [
        { id: '0', peerUrl: 'http://s0:1', publicUrl: undefined, healthCheckLink: undefined, firstSeen: 5, registeredAt: undefined, lastSeen: 9, lastReport: undefined, discoveredAt: undefined, stoppingSince: undefined, downSince: undefined },
      ]);
      await store.deleteServer('0');
      assert.deepEqual(await store.getServers(), []);
    } finally {
      await store.close();
    }
  });

  it('fails fast with STORE_UNAVAILABLE when Redis is unreachable', async () => {
    const store = createRedisStore({ url: 'redis://127.0.0.1:1', keyPrefix: 'x:', commandTimeoutMs: 1_000 });
    try {
      await assert.rejects(store.ping(), (err: unknown) => err instanceof StoreError && err.code === 'STORE_UNAVAILABLE');
      await assert.rejects(store.readToken('t'), StoreError);
    } finally {
      await store.close();
    }
  });
});
