// The ONE allocation test suite, run against every store (memory always; Redis against a
// real redis-server). Not a test file itself: dispatcher-*.test.ts files call it.
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Allocator, type AllocatorConfig } from '../../src/dispatcher/allocator.js';
import type { AllocationResult } from '../../src/dispatcher/allocation-policy.js';
import { rankServers } from '../../src/dispatcher/placement.js';
import type { DispatcherStore } from '../../src/dispatcher/store.js';

export interface StoreHandle {
  store: DispatcherStore;
  /** A second handle on the same shared state (another replica), when the store supports it. */
  peer?: () => DispatcherStore;
  cleanup(): Promise<void>;
}

export const CONFIG: AllocatorConfig = {
  maxClientsPerToken: 4,
  serverTtlMs: 90_000,
  clientLeaseMs: 2_000,
  connectGraceMs: 30_000,
  retryAfterSeconds: 2,
  startupGraceMs: 0,
};

export const sha = (s: string) => createHash('sha256').update(s).digest('hex');
export const TOKEN = sha('b9460892-5397-48f1-8697-488769ae3797');
export const OTHER_TOKEN = sha('0f9e7d43-1c2b-4a59-8e6f-7a8b9c0d1e2f');

function granted(r: AllocationResult): Extract<AllocationResult, { kind: 'granted' }> {
  assert.equal(r.kind, 'granted', `expected a grant, got ${JSON.stringify(r)}`);
  return r as Extract<AllocationResult, { kind: 'granted' }>;
}

export function allocationSuite(name: string, makeStore: () => Promise<StoreHandle>): void {
  describe(`allocation rules (${name} store)`, () => {
    let handle: StoreHandle;
    let now: number;
    const clock = () => now;
    let a: Allocator;
    const make = (store: DispatcherStore, cfg: Partial<AllocatorConfig> = {}) => new Allocator({ ...CONFIG, ...cfg }, { store, clock });
    /** Both tunnels of a classic client, as a server reports them. */
    const connectBoth = async (serverId: string, clientId: string, token = TOKEN, role = true) => {
      await a.reportConnection(serverId, token, clientId, 'client-connected', role ? 'primary' : undefined);
      await a.reportConnection(serverId, token, clientId, 'client-connected', role ? 'secondary' : undefined);
    };
    const disconnectBoth = async (serverId: string, clientId: string, token = TOKEN, role = true) => {
      await a.reportConnection(serverId, token, clientId, 'client-disconnected', role ? 'primary' : undefined);
      await a.reportConnection(serverId, token, clientId, 'client-disconnected', role ? 'secondary' : undefined);
    };
    const servers3 = async () => {
      for (const id of ['0', '1', '2']) await a.registerServer(id, { peerUrl: `http://broker-server-${id}:7341` });
    };

    beforeEach(async () => {
      handle = await makeStore();
      now = 1_790_000_000_000;
      a = make(handle.store);
    });
    afterEach(async () => {
      await handle.cleanup();
    });

    it('answers NO_LIVE_SERVER while no server is registered', async () => {
      const r = await a.allocate(TOKEN, 'c1');
      assert.deepEqual(r, { kind: 'unavailable', code: 'NO_LIVE_SERVER', retryAfterSeconds: 2 });
    });

    it('spreads a token over distinct servers in rendezvous order, then doubles up on the most preferred', async () => {
      await servers3();
      const order = rankServers(TOKEN, ['0', '1', '2']);
      const got: string[] = [];
      for (const c of ['c1', 'c2', 'c3', 'c4']) {
        const r = granted(await a.allocate(TOKEN, c));
        assert.equal(r.created, true);
        got.push(r.server.id);
      }
      assert.deepEqual(got.slice(0, 3), order, 'first three clients on three distinct servers, preference order');
      assert.equal(got[3], order[0], 'the fourth goes to the least used server, ties broken by preference');
      assert.equal(granted(await a.allocate(TOKEN, 'c1')).server.peerUrl, `http://broker-server-${order[0]}:7341`);
    });

    it('is deterministic: a fresh store with the same servers places the same way', async () => {
      await servers3();
      const first = [];
      for (const c of ['x1', 'x2', 'x3']) first.push(granted(await a.allocate(OTHER_TOKEN, c)).server.id);
      const other = await makeStore();
      try {
        const b = make(other.store);
        for (const id of ['2', '0', '1']) await b.registerServer(id, {});
        const second = [];
        for (const c of ['y1', 'y2', 'y3']) second.push(granted(await b.allocate(OTHER_TOKEN, c)).server.id);
        assert.deepEqual(second, first);
        assert.deepEqual(first, rankServers(OTHER_TOKEN, ['0', '1', '2']));
      } finally {
        await other.cleanup();
      }
    });

    it('gives the same client id the same server back (sticky), without using a new slot', async () => {
      await servers3();
      const s1 = granted(await a.allocate(TOKEN, 'c1')).server.id;
      await connectBoth(s1, 'c1');
      for (let i = 0; i < 3; i++) {
        const r = granted(await a.allocate(TOKEN, 'c1'));
        assert.equal(r.server.id, s1);
        assert.equal(r.created, false);
      }
      const t = await a.tokenConnections(TOKEN);
      assert.equal(t.allocations.length, 1);
    });

    it('refuses the 5th client with MAX_CLIENTS_PER_TOKEN; other tokens are unaffected', async () => {
      await servers3();
      for (const c of ['c1', 'c2', 'c3', 'c4']) granted(await a.allocate(TOKEN, c));
      const r = await a.allocate(TOKEN, 'c5');
      assert.deepEqual(r, { kind: 'refused', code: 'MAX_CLIENTS_PER_TOKEN', held: 4, max: 4, retryAfterSeconds: 2 });
      granted(await a.allocate(OTHER_TOKEN, 'c5'));
      // Still refused later while the four are connected.
      for (const [i, c] of ['c1', 'c2', 'c3', 'c4'].entries()) await connectBoth(String(i % 3), c);
      now += 60_000;
      assert.equal((await a.allocate(TOKEN, 'c5')).kind, 'refused');
    });

    it('DELETE releases a slot at once, and the released client’s draining tunnels do not take it back', async () => {
      await servers3();
      const placed = new Map<string, string>();
      for (const c of ['c1', 'c2', 'c3', 'c4']) {
        const id = granted(await a.allocate(TOKEN, c)).server.id;
        placed.set(c, id);
        await connectBoth(id, c, TOKEN, false);
      }
      assert.equal(await a.release(TOKEN, 'c2'), true);
      // c2 is draining: its tunnels still ping before closing.
      await a.reportConnection(placed.get('c2')!, TOKEN, 'c2', 'client-pinged');
      const r = granted(await a.allocate(TOKEN, 'c5'));
      assert.equal(r.created, true);
      assert.equal(r.server.id, placed.get('c2'), 'the freed server is the least used one');
      await a.reportConnection(placed.get('c2')!, TOKEN, 'c2', 'client-pinged');
      assert.equal((await a.allocate(TOKEN, 'c6')).kind, 'refused');
      await disconnectBoth(placed.get('c2')!, 'c2', TOKEN, false);
      assert.equal((await a.allocate(TOKEN, 'c6')).kind, 'refused');
    });

    it('rolling update: the old pod (same client id, other instance) leaving keeps the new pod’s slot and tunnels', async () => {
      await servers3();
      const placed = new Map<string, string>();
      for (const c of ['c1', 'c2', 'c3', 'c4']) {
        const id = granted(await a.allocate(TOKEN, c, `${c}-old`)).server.id;
        placed.set(c, id);
        for (const role of ['primary', 'secondary']) await a.reportConnection(id, TOKEN, c, 'client-connected', role, undefined, `${c}-old`);
      }
      // c1's replacement starts (same id, new instance), connects, then the old pod leaves.
      const s1 = placed.get('c1')!;
      const again = granted(await a.allocate(TOKEN, 'c1', 'c1-new'));
      assert.equal(again.created, false, 'the replacement takes the same slot');
      for (const role of ['primary', 'secondary']) await a.reportConnection(again.server.id, TOKEN, 'c1', 'client-connected', role, undefined, 'c1-new');
      let view = await a.tokenConnections(TOKEN);
      assert.equal(view.servers.flatMap((s) => s.connections).filter((c) => c.clientId === 'c1').reduce((n, c) => n + c.tunnels, 0), 4, 'both pods’ tunnels counted, one entry per server');
      for (const role of ['primary', 'secondary']) await a.reportConnection(s1, TOKEN, 'c1', 'client-disconnected', role, undefined, 'c1-old');
      assert.equal(await a.release(TOKEN, 'c1', 'c1-old'), false, 'the old instance’s release is ignored');
      view = await a.tokenConnections(TOKEN);
      assert.deepEqual(view.allocations.find((x) => x.clientId === 'c1'), { clientId: 'c1', serverId: again.server.id, connected: true });
      assert.equal(view.servers.flatMap((s) => s.connections).filter((c) => c.clientId === 'c1').reduce((n, c) => n + c.tunnels, 0), 2);
      now += 60_000;
      assert.equal((await a.allocate(TOKEN, 'c5')).kind, 'refused', 'no 5th client takes the slot');
      // Released by the instance that holds it (scale-down): freed at once.
      assert.equal(await a.release(TOKEN, 'c1', 'c1-new'), true);
      assert.equal(granted(await a.allocate(TOKEN, 'c5')).created, true);
    });

    it('rolling update: the old pod’s release is ignored once the new one asked, even before it connected', async () => {
      await servers3();
      const id = granted(await a.allocate(TOKEN, 'c1', 'old')).server.id;
      await a.reportConnection(id, TOKEN, 'c1', 'client-connected', 'primary', undefined, 'old');
      granted(await a.allocate(TOKEN, 'c1', 'new'));
      await a.reportConnection(id, TOKEN, 'c1', 'client-disconnected', 'primary', undefined, 'old');
      assert.equal(await a.release(TOKEN, 'c1', 'old'), false);
      assert.equal((await a.tokenConnections(TOKEN)).allocations.length, 1, 'held for the new pod to connect');
      // Without an instance (Snyk's client never sends one) a release applies to the client id, as before.
      assert.equal(await a.release(TOKEN, 'c1'), true);
      assert.equal((await a.tokenConnections(TOKEN)).allocations.length, 0);
    });

    it('a killed client keeps its slot for the lease only; Retry-After tells the waiter when it frees', async () => {
      await servers3();
      for (const [i, c] of ['c1', 'c2', 'c3', 'c4'].entries()) {
        granted(await a.allocate(TOKEN, c));
        now += 100;
        await connectBoth(String(i % 3), c);
      }
      now += 10_000;
      await disconnectBoth('1', 'c2'); // kill -9: the server sees both tunnels close
      const waiting = await a.allocate(TOKEN, 'c5');
      assert.equal(waiting.kind, 'refused');
      assert.equal((waiting as { retryAfterSeconds: number }).retryAfterSeconds, 2);
      now += 1_500;
      assert.equal(((await a.allocate(TOKEN, 'c5')) as { retryAfterSeconds: number }).retryAfterSeconds, 1, 'lease ends in 0.5 s');
      now += 500;
      const r = granted(await a.allocate(TOKEN, 'c5'));
      assert.equal(r.created, true);
      assert.equal((await a.allocate(TOKEN, 'c2')).kind, 'refused', 'the dead client lost its slot');
    });

    it('a client that reconnects within the lease keeps its slot (reported with and without roles)', async () => {
      await servers3();
      for (const withRole of [true, false]) {
        const token = withRole ? TOKEN : OTHER_TOKEN;
        for (const [i, c] of ['c1', 'c2', 'c3', 'c4'].entries()) {
          granted(await a.allocate(token, c));
          await connectBoth(String(i % 3), c, token, withRole);
        }
        await disconnectBoth('0', 'c1', token, withRole);
        now += 1_000;
        await connectBoth('0', 'c1', token, withRole);
        now += 5_000;
        assert.equal((await a.allocate(token, 'c5')).kind, 'refused', `slot kept (roles: ${withRole})`);
        const again = granted(await a.allocate(token, 'c1'));
        assert.equal(again.server.id, '0');
        assert.equal(again.created, false);
      }
    });

    it('one tunnel closing is not the client leaving', async () => {
      await servers3();
      for (const [i, c] of ['c1', 'c2', 'c3', 'c4'].entries()) {
        granted(await a.allocate(TOKEN, c));
        await connectBoth(String(i % 3), c);
      }
      await a.reportConnection('0', TOKEN, 'c1', 'client-disconnected', 'secondary');
      now += 60_000;
      await a.reportConnection('0', TOKEN, 'c1', 'client-pinged', 'primary');
      for (const [i, c] of ['c2', 'c3', 'c4'].entries()) await a.reportConnection(String((i + 1) % 3), TOKEN, c, 'client-pinged', 'primary');
      assert.equal((await a.allocate(TOKEN, 'c5')).kind, 'refused');
    });

    it('a connected report the server retried (no roles) does not keep a killed client alive', async () => {
      await servers3();
      for (const [i, c] of ['c1', 'c2', 'c3', 'c4'].entries()) {
        granted(await a.allocate(TOKEN, c));
        await connectBoth(String(i % 3), c, TOKEN, false);
      }
      await a.reportConnection('0', TOKEN, 'c1', 'client-connected'); // duplicate after a lost answer
      await disconnectBoth('0', 'c1', TOKEN, false);
      now += CONFIG.clientLeaseMs;
      assert.equal(granted(await a.allocate(TOKEN, 'c5')).created, true);
    });

    it('learns a server’s peer_url from its connection reports (after a restart with an empty store)', async () => {
      await a.reportConnection('5', TOKEN, 'c1', 'client-pinged', undefined, 'http://broker-server-5:7341');
      const [s] = await a.listServers();
      assert.equal(s?.peerUrl, 'http://broker-server-5:7341');
      assert.equal(granted(await a.allocate(TOKEN, 'c1')).server.peerUrl, 'http://broker-server-5:7341');
    });

    it('an allocation never followed by a connection is held for the connect grace, then freed', async () => {
      await servers3();
      for (const c of ['c1', 'c2', 'c3', 'c4']) granted(await a.allocate(TOKEN, c));
      now += CONFIG.connectGraceMs - 1;
      assert.equal((await a.allocate(TOKEN, 'c5')).kind, 'refused');
      now += 1;
      assert.equal(granted(await a.allocate(TOKEN, 'c5')).created, true);
    });

    it('a stopping server gets no new clients; its clients move when they ask again, keeping their slot', async () => {
      await servers3();
      const placed = new Map<string, string>();
      for (const c of ['c1', 'c2', 'c3', 'c4']) {
        const id = granted(await a.allocate(TOKEN, c)).server.id;
        placed.set(c, id);
        await connectBoth(id, c);
      }
      const leaving = placed.get('c1')!;
      await a.stopServer(leaving);
      assert.equal((await a.listServers()).find((s) => s.id === leaving)?.status, 'stopping');
      // The server drains: tunnels close, the client is alive and asks again (full token, still its slot).
      await disconnectBoth(leaving, 'c1');
      now += 5_000;
      assert.equal((await a.allocate(TOKEN, 'c5')).kind, 'refused', 'slot held while the client moves');
      const moved = granted(await a.allocate(TOKEN, 'c1'));
      assert.equal(moved.moved, true);
      assert.notEqual(moved.server.id, leaving);
      for (const c of ['n1', 'n2', 'n3']) {
        const r = granted(await a.allocate(OTHER_TOKEN, c));
        assert.notEqual(r.server.id, leaving);
      }
      // Back after a restart: registration puts it back in placement.
      await a.registerServer(leaving, {});
      assert.equal((await a.listServers()).find((s) => s.id === leaving)?.status, 'live');
    });

    it('takes a server out of placement when its activity lapses (TTL) and back on activity', async () => {
      await a.registerServer('0', {});
      now += 1_000;
      await a.registerServer('1', {});
      now += CONFIG.serverTtlMs - 500;
      // '0' lapsed, '1' not yet.
      assert.deepEqual((await a.listServers()).map((s) => [s.id, s.status]), [['0', 'expired'], ['1', 'live']]);
      for (const c of ['c1', 'c2']) assert.equal(granted(await a.allocate(TOKEN, c)).server.id, '1');
      await a.reportConnection('0', OTHER_TOKEN, 'z', 'client-pinged');
      assert.equal((await a.listServers()).find((s) => s.id === '0')?.status, 'live');
    });

    it('a server that fails its probes leaves placement; its clients get the connect grace to move', async () => {
      await servers3();
      const placed = new Map<string, string>();
      for (const c of ['c1', 'c2', 'c3', 'c4']) {
        const id = granted(await a.allocate(TOKEN, c)).server.id;
        placed.set(c, id);
        await connectBoth(id, c);
      }
      const dead = placed.get('c1')!;
      now += 1_000;
      await a.probeResult(dead, false);
      const view = await a.tokenConnections(TOKEN);
      assert.ok(!view.servers.some((s) => s.serverId === dead), 'routing lookup drops the dead server');
      now += 10_000;
      assert.equal((await a.allocate(TOKEN, 'c5')).kind, 'refused', 'the crashed server’s clients keep their slots for a while');
      const moved = granted(await a.allocate(TOKEN, 'c1'));
      assert.equal(moved.moved, true);
      assert.notEqual(moved.server.id, dead);
      await a.probeResult(dead, true);
      assert.equal((await a.listServers()).find((s) => s.id === dead)?.status, 'live');
    });

    it('a server that fails its probes but keeps reporting stays in placement (broken probe path)', async () => {
      await servers3();
      now += 1_000;
      await a.probeResult('1', false);
      assert.equal((await a.listServers()).find((s) => s.id === '1')?.status, 'down');
      now += 1_000;
      await a.reportConnection('1', TOKEN, 'c1', 'client-pinged');
      assert.equal((await a.listServers()).find((s) => s.id === '1')?.status, 'live', 'it talks to us: alive');
      now += 1_000;
      await a.probeResult('1', false);
      assert.equal((await a.listServers()).find((s) => s.id === '1')?.status, 'down', 'a new failure after its last report: down again');
    });

    it('converges from connection reports alone (dispatcher restarted with an empty store)', async () => {
      // No registration at all: servers and clients are learned from connected/pinged calls.
      for (const [i, c] of ['c1', 'c2', 'c3', 'c4'].entries()) {
        assert.equal(await a.reportConnection(String(i % 3), TOKEN, c, 'client-pinged'), true, 'unregistered server: asked to register');
      }
      await a.registerServer('0', { peerUrl: 'http://broker-server-0:7341' });
      assert.equal(await a.reportConnection('0', TOKEN, 'c1', 'client-pinged'), false, 'registered now');
      assert.deepEqual((await a.listServers()).map((s) => s.status), ['live', 'live', 'live']);
      const r = await a.allocate(TOKEN, 'c5');
      assert.equal(r.kind, 'refused');
      const back = granted(await a.allocate(TOKEN, 'c2'));
      assert.equal(back.server.id, '1');
      assert.equal(back.created, false);
      const t = await a.tokenConnections(TOKEN);
      assert.deepEqual(
        t.servers.map((s) => [s.serverId, s.connections.map((c) => c.clientId).sort()]),
        [['0', ['c1', 'c4']], ['1', ['c2']], ['2', ['c3']]],
      );
    });

    it('the routing lookup lists live servers with peer URLs, connections, roles and tunnel counts', async () => {
      await servers3();
      await connectBoth('2', 'c1');
      await a.reportConnection('0', TOKEN, 'c2', 'client-connected');
      const t = await a.tokenConnections(TOKEN);
      assert.deepEqual(
        t.servers.map((s) => ({ id: s.serverId, url: s.peerUrl, conns: s.connections.map((c) => [c.clientId, c.roles.sort(), c.tunnels]) })),
        [
          { id: '0', url: 'http://broker-server-0:7341', conns: [['c2', [], 1]] },
          { id: '2', url: 'http://broker-server-2:7341', conns: [['c1', ['primary', 'secondary'], 2]] },
        ],
      );
    });

    it('leaves no state behind after clients come and go (sweep returns to baseline)', async () => {
      await servers3();
      for (let round = 0; round < 3; round++) {
        for (const c of ['c1', 'c2', 'c3', 'c4', 'c5']) {
          const r = await a.allocate(TOKEN, `${c}-${round}`);
          if (r.kind === 'granted') await connectBoth(r.server.id, `${c}-${round}`);
        }
        now += 1_000;
        const t = await a.tokenConnections(TOKEN);
        for (const x of t.servers) for (const c of x.connections) await disconnectBoth(x.serverId, c.clientId);
        await a.release(TOKEN, `c1-${round}`);
        now += CONFIG.clientLeaseMs;
      }
      await a.sweep();
      assert.deepEqual(await handle.store.listTokens(), []);
      assert.equal((await handle.store.readToken(TOKEN)).state, undefined);
      // Servers stay while alive, and are forgotten once long expired.
      now += CONFIG.serverTtlMs + CONFIG.connectGraceMs + 1;
      await a.sweep();
      assert.deepEqual(await handle.store.getServers(), []);
    });

    it('after a restart that finds servers already running, new clients wait out the startup grace; known ones are served', async () => {
      const w = make(handle.store, { startupGraceMs: 30_000 });
      // Servers were running before this dispatcher: it learns of them from their pings.
      await w.reportConnection('0', TOKEN, 'known', 'client-pinged');
      await w.reportConnection('1', TOKEN, 'other', 'client-pinged');
      const r = await w.allocate(TOKEN, 'new');
      assert.equal(r.kind, 'refused');
      assert.equal((r as { code: string }).code, 'WARMING_UP');
      assert.equal((r as { retryAfterSeconds: number }).retryAfterSeconds, 2);
      granted(await w.allocate(TOKEN, 'known'));
      now += 30_000;
      granted(await w.allocate(TOKEN, 'new'));
    });

    it('a re-registration announcing open tunnels from a server we did not know also means it was running', async () => {
      const w = make(handle.store, { startupGraceMs: 30_000 });
      await w.registerServer('0', { peerUrl: 'http://broker-server-0:7341', openTunnels: 2 });
      assert.equal(((await w.allocate(TOKEN, 'new')) as { code?: string }).code, 'WARMING_UP');
      await w.registerServer('1', { openTunnels: 0 });
      now += 30_000;
      granted(await w.allocate(TOKEN, 'new'));
    });

    it('a fresh system (servers register first) and a store that kept its servers never wait', async () => {
      const w = make(handle.store, { startupGraceMs: 30_000 });
      await servers3();
      await w.reportConnection('0', TOKEN, 'known', 'client-pinged');
      assert.equal(granted(await w.allocate(TOKEN, 'new')).created, true);
      now += 1_000;
      const restarted = make(handle.store, { startupGraceMs: 30_000 });
      await restarted.reportConnection('1', TOKEN, 'known2', 'client-pinged');
      assert.equal(granted(await restarted.allocate(TOKEN, 'new2')).created, true);
    });

    it('concurrent allocations through two allocators (replicas) on one store honour the limit exactly', async () => {
      await servers3();
      const peerStore = handle.peer?.() ?? handle.store;
      const b = make(peerStore);
      for (let round = 0; round < 5; round++) {
        const token = sha(`concurrency-${round}`);
        const results = await Promise.all(
          ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7'].map((c, i) => (i % 2 === 0 ? a : b).allocate(token, c)),
        );
        const ok = results.filter((r) => r.kind === 'granted');
        assert.equal(ok.length, 4, `round ${round}: ${JSON.stringify(results.map((r) => r.kind))}`);
        const t = await a.tokenConnections(token);
        assert.equal(t.allocations.length, 4);
        assert.equal(new Set(t.allocations.map((x) => x.serverId)).size, 3, 'distinct servers used first');
      }
    });
  });
}
