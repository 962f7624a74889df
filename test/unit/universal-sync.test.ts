// When and how the connections change (src/client/universal/connection-sync.ts,
// connection-registry.ts, auth-renewal.ts): coalesced sync runs and polling; the registry's
// reconcile by name with a fake build (added, removed, rotated, changed, unchanged,
// make-before-break, failing builds, disabled logged once, duplicates, stopAll, restart); and each
// tunnel's auth renewal against the fake Snyk API.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createEgress, type Egress } from '../../src/http/egress.js';
import type { BrokerConnection } from '../../src/client/broker-connection.js';
import type { PlatformAuth } from '../../src/client/platform-auth.js';
import type { Tunnel } from '../../src/client/tunnel.js';
import { AuthRenewal, type AuthRenewalOptions } from '../../src/client/universal/auth-renewal.js';
import type { ConnectionPlan, DisabledPlan, RunnablePlan } from '../../src/client/universal/connection-env.js';
import { ConnectionRegistry, type RunningConnection } from '../../src/client/universal/connection-registry.js';
import { ConnectionSync } from '../../src/client/universal/connection-sync.js';
import { OAuthToken } from '../../src/client/universal/oauth-token.js';
import { startFakeSnykApi, type FakeSnykApi } from '../support/fake-snyk-api.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { captureLogger, deferred, type Deferred } from './universal-helpers.js';

describe('ConnectionSync', () => {
  it('coalesces: ten triggers during a run give exactly one more run, and each resolves after it', async () => {
    const { logger } = captureLogger();
    const gates: Array<Deferred> = [];
    let started = 0;
    const sync = new ConnectionSync({
      logger,
      intervalMs: 60_000,
      needsPolling: () => false,
      once: () => {
        started++;
        const g = deferred();
        gates.push(g);
        return g.promise;
      },
    });
    const first = sync.run('start');
    assert.equal(started, 1);
    let laterDone = 0;
    const later = Array.from({ length: 10 }, (_, i) => sync.run(`trigger ${i}`).then(() => void laterDone++));
    let firstDone = false;
    void first.then(() => (firstDone = true));
    gates[0]!.resolve();
    await first;
    assert.ok(firstDone);
    await waitFor('the queued run to start', () => started === 2);
    assert.equal(laterDone, 0, 'the queued triggers wait for the run that started after them');
    const extra = sync.run('during the second run');
    gates[1]!.resolve();
    await Promise.all(later);
    assert.equal(laterDone, 10);
    await waitFor('the run queued during the second to start', () => started === 3);
    gates[2]!.resolve();
    await extra;
    assert.equal(started, 3, 'exactly one run per batch of triggers');
    sync.stop();
  });

  it('a failed run is logged, not thrown; the next run goes ahead', async () => {
    const log = captureLogger();
    let calls = 0;
    const sync = new ConnectionSync({
      logger: log.logger,
      intervalMs: 60_000,
      needsPolling: () => false,
      once: () => {
        calls++;
        return calls === 1 ? Promise.reject(new Error('Snyk said no')) : Promise.resolve();
      },
    });
    await sync.run('server asked (config/reload)');
    const warned = log.find('connection sync failed; the running connections are kept');
    assert.equal(warned.length, 1);
    assert.equal(warned[0]!.level, 'warn');
    assert.equal(warned[0]!.reason, 'server asked (config/reload)');
    assert.match(String(warned[0]!.err), /Snyk said no/);
    await sync.run('again');
    assert.equal(calls, 2);
    assert.equal(log.find('connection sync failed; the running connections are kept').length, 1);
    sync.stop();
  });

  it('first() is the caller’s: its error is thrown', async () => {
    const err = new Error('refused');
    const sync = new ConnectionSync({ logger: captureLogger().logger, intervalMs: 60_000, needsPolling: () => false, once: () => Promise.reject(err) });
    await assert.rejects(sync.first(), (e) => e === err);
    sync.stop();
  });

  it('polls only while needsPolling() says so', async () => {
    let polling = false;
    let asked = 0;
    let runs = 0;
    const sync = new ConnectionSync({
      logger: captureLogger().logger,
      intervalMs: 100,
      needsPolling: () => {
        asked++;
        return polling;
      },
      once: () => {
        runs++;
        return Promise.resolve();
      },
    });
    sync.startPolling();
    sync.startPolling(); // a second call does not add a second timer
    await waitFor('three timer ticks', () => asked >= 3, { timeoutMs: 5000, intervalMs: 20 });
    assert.equal(runs, 0, 'no run while a tunnel is open');
    polling = true;
    await waitFor('a polled run', () => runs >= 1, { timeoutMs: 5000, intervalMs: 20 });
    sync.stop();
    const at = runs;
    // After stop() nothing runs, whatever the trigger.
    await sync.run('after stop');
    assert.equal(runs, at);
  });
});

// ---- the registry, with a fake build ----

interface FakeConn {
  stopped?: string;
  extrasStopped: boolean;
}

function plan(name: string, identifier: string, env: Record<string, string> = {}, filterType: RunnablePlan['filterType'] = 'github'): RunnablePlan {
  return { name, type: filterType, filterType, identifier, env: { BROKER_TOKEN: identifier, ...env }, contexts: {} };
}

function off(name: string, why = 'connection is missing environment variable value X; restart the broker once added', unused?: boolean): DisabledPlan {
  return { name, type: 'github', disabled: why, ...(unused ? { unused } : {}) };
}

/** A registry whose build() makes stub connections and records what happened, in order. */
function fakeRegistry(opts: { fail?: (p: RunnablePlan) => boolean; gate?: (p: RunnablePlan) => Promise<void> | undefined } = {}) {
  const log = captureLogger();
  const events: string[] = [];
  const built: Array<{ plan: RunnablePlan; conn: FakeConn }> = [];
  const registry = new ConnectionRegistry({
    logger: log.logger,
    async build(p) {
      events.push(`build ${p.name}@${p.identifier}`);
      await opts.gate?.(p);
      if (opts.fail?.(p)) {
        events.push(`build-failed ${p.name}@${p.identifier}`);
        throw new Error(`unusable configuration for ${p.name}`);
      }
      const conn: FakeConn = { extrasStopped: false };
      built.push({ plan: p, conn });
      events.push(`built ${p.name}@${p.identifier}`);
      const connection = {
        tunnels: [],
        isReady: () => true,
        stop: (reason: string) => {
          conn.stopped = reason;
          events.push(`stop ${p.name}@${p.identifier} ${reason}`);
          return Promise.resolve();
        },
      } as unknown as BrokerConnection;
      return { plan: p, connection, stopExtras: () => void (conn.extrasStopped = true) } satisfies RunningConnection;
    },
  });
  const running = () => Object.fromEntries([...registry.running].map(([k, v]) => [k, v.plan.identifier]));
  return { registry, log, events, built, running };
}

describe('ConnectionRegistry', () => {
  it('added connections are built and started; an unchanged list rebuilds nothing', async () => {
    const f = fakeRegistry();
    await f.registry.apply([plan('a', 't-a'), plan('b', 't-b')]);
    assert.deepEqual(f.running(), { a: 't-a', b: 't-b' });
    assert.equal(f.built.length, 2);
    const started = f.log.find('connection started');
    assert.deepEqual(
      started.map((e) => [e.connection, e.why]),
      [
        ['a', 'added'],
        ['b', 'added'],
      ],
    );
    const before = f.events.length;
    await f.registry.apply([plan('b', 't-b'), plan('a', 't-a')]);
    await f.registry.apply([plan('a', 't-a'), plan('b', 't-b')]);
    assert.equal(f.events.length, before, 'no build, no stop');
  });

  it('a removed connection is stopped, its extras too; the others are untouched', async () => {
    const f = fakeRegistry();
    await f.registry.apply([plan('a', 't-a'), plan('b', 't-b')]);
    await f.registry.apply([plan('b', 't-b')]);
    assert.deepEqual(f.running(), { b: 't-b' });
    assert.equal(f.built[0]!.conn.stopped, 'removed');
    assert.equal(f.built[0]!.conn.extrasStopped, true);
    assert.equal(f.built[1]!.conn.stopped, undefined);
    const stopping = f.log.find('connection stopping');
    assert.deepEqual(stopping.map((e) => [e.connection, e.why]), [['a', 'removed from the deployment']]);
    await f.registry.apply([]);
    assert.deepEqual(f.running(), {});
  });

  it('a rotated identifier: the new connection is built before the old one stops (make-before-break)', async () => {
    let gate: Deferred | undefined;
    const f = fakeRegistry({ gate: (p) => (p.identifier === 't-a2' ? (gate = deferred()).promise : undefined) });
    await f.registry.apply([plan('a', 't-a1')]);
    const applying = f.registry.apply([plan('a', 't-a2')]);
    await waitFor('the new build to start', () => gate);
    assert.equal(f.built[0]!.conn.stopped, undefined, 'the old one runs while the new one is built');
    assert.deepEqual(f.running(), { a: 't-a1' });
    gate!.resolve();
    await applying;
    assert.deepEqual(f.running(), { a: 't-a2' });
    assert.deepEqual(f.events, ['build a@t-a1', 'built a@t-a1', 'build a@t-a2', 'built a@t-a2', 'stop a@t-a1 rotated']);
    assert.equal(f.log.find('connection started').at(-1)!.why, 'identifier rotated');
  });

  it('changed values (same identifier): rebuilt, the old one stopped as replaced', async () => {
    const f = fakeRegistry();
    await f.registry.apply([plan('a', 't-a', { GITHUB_TOKEN: 'v1' })]);
    await f.registry.apply([plan('a', 't-a', { GITHUB_TOKEN: 'v2' })]);
    assert.equal(f.built.length, 2);
    assert.equal(f.built[0]!.conn.stopped, 'replaced');
    assert.equal(f.built[1]!.plan.env.GITHUB_TOKEN, 'v2');
    assert.equal(f.log.find('connection started').at(-1)!.why, 'configuration changed');
    // The order of the env's keys is no change.
    await f.registry.apply([{ ...plan('a', 't-a'), env: { GITHUB_TOKEN: 'v2', BROKER_TOKEN: 't-a' } }]);
    assert.equal(f.built.length, 2);
    // A filter type change is one.
    await f.registry.apply([plan('a', 't-a', { GITHUB_TOKEN: 'v2' }, 'github-enterprise')]);
    assert.equal(f.built.length, 3);
  });

  it('a failing build keeps the old connection running, is logged, and is tried again next sync', async () => {
    let failing = true;
    const f = fakeRegistry({ fail: (p) => failing && p.env.GITHUB_TOKEN === 'broken' });
    await f.registry.apply([plan('a', 't-a', { GITHUB_TOKEN: 'good' }), plan('b', 't-b')]);
    await f.registry.apply([plan('a', 't-a', { GITHUB_TOKEN: 'broken' }), plan('b', 't-b'), plan('c', 't-c', { GITHUB_TOKEN: 'broken' })]);
    assert.deepEqual(f.running(), { a: 't-a', b: 't-b' });
    assert.equal(f.built[0]!.conn.stopped, undefined, 'the old a still runs');
    assert.equal(f.registry.running.get('a')!.plan.env.GITHUB_TOKEN, 'good');
    const errors = f.log.find('connection cannot start: its configuration is unusable');
    assert.deepEqual(errors.map((e) => e.connection).sort(), ['a', 'c']);
    assert.equal(errors[0]!.level, 'error');
    assert.match(String(errors[0]!.err), /unusable configuration/);
    failing = false;
    await f.registry.apply([plan('a', 't-a', { GITHUB_TOKEN: 'broken' }), plan('b', 't-b'), plan('c', 't-c', { GITHUB_TOKEN: 'broken' })]);
    assert.deepEqual(f.running(), { a: 't-a', b: 't-b', c: 't-c' });
    assert.equal(f.built[0]!.conn.stopped, 'replaced');
  });

  it('disabled: a running connection stops; the reason is logged once across syncs, again when it changes', async () => {
    const f = fakeRegistry();
    await f.registry.apply([plan('a', 't-a')]);
    await f.registry.apply([off('a')]);
    assert.deepEqual(f.running(), {});
    assert.equal(f.built[0]!.conn.stopped, 'removed');
    assert.equal(f.log.find('connection stopping')[0]!.why, 'disabled');
    for (let i = 0; i < 3; i++) await f.registry.apply([off('a')]);
    const reason = off('a').disabled;
    assert.equal(f.log.find(reason).length, 1, 'said once');
    assert.equal(f.log.find(reason)[0]!.level, 'warn');
    await f.registry.apply([off('a', 'another reason')]);
    assert.equal(f.log.find('another reason').length, 1);
    // Gone from the list and back: said again.
    await f.registry.apply([]);
    await f.registry.apply([off('a', 'another reason')]);
    assert.equal(f.log.find('another reason').length, 2);
    // Enabled again, then disabled again: said again.
    await f.registry.apply([plan('a', 't-a')]);
    await f.registry.apply([off('a', 'another reason')]);
    assert.equal(f.log.find('another reason').length, 3);
  });

  it('an unused connection is said at info level', async () => {
    const f = fakeRegistry();
    await f.registry.apply([off('u', 'connection is not in use by any organisation (no identifier): no tunnels', true)]);
    const said = f.log.find(/not in use/);
    assert.equal(said.length, 1);
    assert.equal(said[0]!.level, 'info');
    assert.equal(said[0]!.connection, 'u');
    assert.equal(f.built.length, 0);
  });

  it('two connections with one name: the first is used, the second ignored with a warning', async () => {
    const f = fakeRegistry();
    await f.registry.apply([plan('a', 't-first'), plan('a', 't-second'), off('b'), plan('b', 't-b')]);
    assert.deepEqual(f.running(), { a: 't-first' });
    assert.equal(f.log.find('two connections share this name: the second is ignored').length, 2);
  });

  it('stopAll stops every connection with the reason; nothing starts afterwards', async () => {
    const f = fakeRegistry();
    await f.registry.apply([plan('a', 't-a'), plan('b', 't-b')]);
    await f.registry.stopAll('SIGTERM');
    assert.deepEqual(f.running(), {});
    assert.deepEqual(
      f.built.map((b) => [b.conn.stopped, b.conn.extrasStopped]),
      [
        ['SIGTERM', true],
        ['SIGTERM', true],
      ],
    );
    await f.registry.apply([plan('c', 't-c')]);
    await f.registry.restart('a', 'x');
    assert.equal(f.built.length, 2);
  });

  it('a build still running when stopAll comes is stopped when it finishes, not added', async () => {
    const gate = deferred();
    const f = fakeRegistry({ gate: (p) => (p.name === 'slow' ? gate.promise : undefined) });
    const applying = f.registry.apply([plan('slow', 't-s')]);
    await waitFor('the build to start', () => f.events.includes('build slow@t-s'));
    await f.registry.stopAll('SIGTERM');
    gate.resolve();
    await applying;
    assert.deepEqual(f.running(), {});
    assert.equal(f.built[0]!.conn.stopped, 'stop');
  });

  it('restart(): the same plan built anew, the new one before the old stops; unknown names are ignored', async () => {
    const f = fakeRegistry();
    await f.registry.apply([plan('a', 't-a'), plan('b', 't-b')]);
    await f.registry.restart('a', 'auth renewal failed 3 times in a row');
    assert.deepEqual(f.events.slice(-3), ['build a@t-a', 'built a@t-a', 'stop a@t-a replaced']);
    assert.equal(f.built.length, 3);
    assert.equal(f.built[0]!.conn.stopped, 'replaced');
    assert.equal(f.built[1]!.conn.stopped, undefined, 'b is untouched');
    assert.equal(f.log.find('restarting the connection')[0]!.reason, 'auth renewal failed 3 times in a row');
    const n = f.events.length;
    await f.registry.restart('nope', 'x');
    assert.equal(f.events.length, n);
    // Unchanged afterwards: the next sync does not rebuild it again.
    await f.registry.apply([plan('a', 't-a'), plan('b', 't-b')]);
    assert.equal(f.events.length, n);
  });

  it('a connection removed while its restart is being built is not brought back', async () => {
    let gate: Deferred | undefined;
    let restarting = false;
    const f = fakeRegistry({ gate: () => (restarting ? (gate = deferred()).promise : undefined) });
    await f.registry.apply([plan('a', 't-a'), plan('b', 't-b')]);
    restarting = true;
    const restart = f.registry.restart('a', 'auth renewal failed');
    await waitFor('the restart build to start', () => gate);
    restarting = false;
    await f.registry.apply([plan('b', 't-b')]);
    assert.deepEqual(f.running(), { b: 't-b' });
    gate!.resolve();
    await restart;
    assert.deepEqual(f.running(), { b: 't-b' }, 'a was removed from the deployment');
    assert.ok(f.built.filter((b) => b.plan.name === 'a').every((b) => b.conn.stopped !== undefined), 'no connection of a left running');
  });

  it('plans of every kind in one list', async () => {
    const f = fakeRegistry();
    const list: ConnectionPlan[] = [plan('a', 't-a'), off('b'), off('c', 'unused', true)];
    await f.registry.apply(list);
    assert.deepEqual(f.running(), { a: 't-a' });
  });
});

// ---- auth renewal, against the fake Snyk API ----

function tunnel(role: 'primary' | 'secondary', serverId?: string | number, isOpen = true): Tunnel {
  return { role, isOpen, placement: serverId === undefined ? undefined : { serverUrl: 'https://broker.example', serverId } } as unknown as Tunnel;
}

describe('AuthRenewal against the fake Snyk API', () => {
  const IDENTIFIER = randomUUID();
  let api: FakeSnykApi;
  let egress: Egress;
  before(async () => {
    api = await startFakeSnykApi({ connections: [{ name: 'gh', type: 'github', identifier: IDENTIFIER }] });
    egress = await createEgress();
  });
  after(async () => {
    await api?.close();
    await egress?.close();
  });

  function counting(auth: PlatformAuth): PlatformAuth & { invalidated: number } {
    const out = { invalidated: 0, authorization: (s?: AbortSignal) => auth.authorization(s), invalidate: () => (out.invalidated++, auth.invalidate()) };
    return out;
  }

  function renewal(tunnels: Tunnel[], over: Partial<AuthRenewalOptions> = {}) {
    const log = captureLogger();
    const failed: string[] = [];
    const auth = counting(new OAuthToken({ egress, apiBaseUrl: api.url, clientId: api.clientId, clientSecret: api.clientSecret, scrubber: log.scrubber }));
    const r = new AuthRenewal(
      { egress, auth, logger: log.logger, apiBaseUrl: api.url, identifier: IDENTIFIER, clientId: 'bc-1', wireVersion: '4.999.0', intervalMs: 600_000, failuresBeforeRestart: 3, onFailed: (why) => void failed.push(why), ...over },
      () => tunnels,
    );
    return { r, log, failed, auth };
  }

  const refreshCalls = () => api.calls.filter((c) => c.path === `/hidden/brokers/connections/${IDENTIFIER}/auth/refresh`);

  it("posts one renewal per open tunnel in Snyk's format", async () => {
    const { r, log } = renewal([tunnel('primary', 3), tunnel('secondary'), tunnel('secondary', 4, false)]);
    const n = refreshCalls().length;
    await r.renewAll();
    const calls = refreshCalls().slice(n);
    assert.equal(calls.length, 2, 'the closed tunnel is skipped');
    assert.equal(calls[0]!.method, 'POST');
    assert.equal(calls[0]!.query.toString(), 'server_id=3&connection_role=primary');
    assert.equal(calls[1]!.query.toString(), 'connection_role=secondary');
    for (const c of calls) {
      assert.match(c.headers.authorization!, /^bearer /);
      assert.equal(c.headers['content-type'], 'application/vnd.api+json');
      assert.equal(c.headers['user-agent'], 'Snyk Broker Client 4.999.0');
      assert.deepEqual(JSON.parse(c.body), { data: { type: 'broker_connection', attributes: { broker_client_id: 'bc-1' } } });
    }
    assert.equal(log.find('tunnel auth renewal failed').length, 0);
    const jwt = calls[0]!.headers.authorization!.slice('bearer '.length);
    log.assertNoSecret(jwt, api.clientSecret);
  });

  it('N consecutive failures of one tunnel call onFailed once; the count starts again afterwards', async () => {
    const { r, log, failed } = renewal([tunnel('primary', 0)]);
    api.failRefresh(2);
    await r.renewAll();
    await r.renewAll();
    assert.deepEqual(failed, []);
    const warned = log.find('tunnel auth renewal failed');
    assert.deepEqual(
      warned.map((e) => [e.role, e.failures]),
      [
        ['primary', 1],
        ['primary', 2],
      ],
    );
    assert.match(String(warned[0]!.err), /refused the renewal/);
    api.failRefresh(1);
    await r.renewAll();
    assert.equal(failed.length, 1);
    assert.match(failed[0]!, /auth renewal failed 3 times in a row/);
    api.failRefresh(2);
    await r.renewAll();
    await r.renewAll();
    assert.equal(failed.length, 1, 'counted from zero after onFailed');
    api.failRefresh(0);
  });

  it('a success resets the count', async () => {
    const { r, failed } = renewal([tunnel('primary', 0)]);
    api.failRefresh(2);
    await r.renewAll();
    await r.renewAll();
    await r.renewAll(); // succeeds
    api.failRefresh(2);
    await r.renewAll();
    await r.renewAll();
    assert.deepEqual(failed, []);
    api.failRefresh(0);
  });

  it('failures are counted per tunnel', async () => {
    // Each round: the primary's call fails (the only failure armed), the secondary's succeeds.
    const { r, failed, log } = renewal([tunnel('primary', 0), tunnel('secondary', 0)]);
    for (let i = 0; i < 3; i++) {
      api.failRefresh(1);
      await r.renewAll();
    }
    assert.equal(failed.length, 1);
    assert.ok(log.find('tunnel auth renewal failed').every((e) => e.role === 'primary'));
  });

  it('a 401 drops the token and is retried once with a new one', async () => {
    const { r, auth, failed } = renewal([tunnel('primary', 0)]);
    await r.renewAll();
    const tokens = api.calls.filter((c) => c.path === '/oauth2/token').length;
    const n = refreshCalls().length;
    api.revokeAllTokens();
    await r.renewAll();
    const calls = refreshCalls().slice(n);
    assert.equal(calls.length, 2);
    assert.notEqual(calls[0]!.headers.authorization, calls[1]!.headers.authorization);
    assert.equal(auth.invalidated, 1);
    assert.equal(api.calls.filter((c) => c.path === '/oauth2/token').length - tokens, 1);
    assert.deepEqual(failed, []);
  });

  it('a second 401 is one failure, not another retry', async () => {
    const { r, auth, log } = renewal([tunnel('primary', 0)]);
    const n = refreshCalls().length;
    api.failRefresh(3, 401);
    await r.renewAll();
    assert.equal(refreshCalls().length - n, 2);
    assert.equal(auth.invalidated, 2);
    assert.equal(log.find('tunnel auth renewal failed')[0]!.failures, 1);
    api.failRefresh(0);
  });

  it('Snyk unreachable counts as a failure and is logged, not thrown', async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const { r, failed, log } = renewal([tunnel('primary', 0)], { apiBaseUrl: down, failuresBeforeRestart: 1 });
    // The token still comes from the fake: only the renewal endpoint is down.
    await r.renewAll();
    assert.equal(failed.length, 1);
    assert.ok(String(log.find('tunnel auth renewal failed')[0]!.err).length > 0);
  });

  it('a round still running is not started twice', async () => {
    const { r } = renewal([tunnel('primary', 0), tunnel('secondary', 0)]);
    const n = refreshCalls().length;
    await Promise.all([r.renewAll(), r.renewAll(), r.renewAll()]);
    assert.equal(refreshCalls().length - n, 2);
  });

  it('start() renews on its timer; stop() ends it', async () => {
    const { r } = renewal([tunnel('primary', 7)], { intervalMs: 100 });
    const n = refreshCalls().length;
    r.start();
    await waitFor('a timed renewal', () => refreshCalls().length > n, { timeoutMs: 5000, intervalMs: 20 });
    r.stop();
    assert.equal(refreshCalls().at(-1)!.query.get('server_id'), '7');
  });
});
