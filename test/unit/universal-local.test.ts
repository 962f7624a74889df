// The Universal client's local server (src/client/universal/universal-local.ts) over stub
// connections on 127.0.0.1: one healthcheck entry per tunnel, /livez and /readyz, webhooks routed
// by /webhook/<type>/ with Snyk's fallbacks, and Snyk's 401 unknown-request-type otherwise.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { createEgress, type Egress } from '../../src/http/egress.js';
import { createClientMetrics } from '../../src/client/metrics.js';
import type { BrokerConnection } from '../../src/client/broker-connection.js';
import type { RunnablePlan } from '../../src/client/universal/connection-env.js';
import type { RunningConnection } from '../../src/client/universal/connection-registry.js';
import { createUniversalLocalHandler } from '../../src/client/universal/universal-local.js';
import { captureLogger } from './universal-helpers.js';
import { FAILURES } from '../../src/protocol/failures.js';

interface StubTunnel {
  role: 'primary' | 'secondary';
  isOpen: boolean;
  displayUrl: string;
}

function running(name: string, filterType: RunnablePlan['filterType'], identifier: string, open: [boolean, boolean], seen: string[]): RunningConnection {
  const tunnels: StubTunnel[] = [
    { role: 'primary', isOpen: open[0], displayUrl: '' },
    { role: 'secondary', isOpen: open[1], displayUrl: '' },
  ];
  const connection = {
    tunnels,
    config: { serverUrl: 'https://broker.example', wireVersion: '4.999.0', transport: 'websocket', validation: undefined },
    local: {
      handler: (req: IncomingMessage, res: ServerResponse) => {
        seen.push(`${name} ${req.method} ${req.url}`);
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ via: name }));
      },
    },
    isReady: () => open[0] || open[1],
  } as unknown as BrokerConnection;
  return { plan: { name, type: filterType, filterType, identifier, env: {}, contexts: {} }, connection, stopExtras: () => undefined };
}

describe('the Universal local server', () => {
  let server: Server;
  let url: string;
  let egress: Egress;
  const seen: string[] = [];
  let conns: RunningConnection[] = [];
  let ready = true;
  let draining = false;

  before(async () => {
    egress = await createEgress();
    const handler = createUniversalLocalHandler({
      logger: captureLogger().logger,
      metrics: createClientMetrics(),
      egress,
      connections: () => conns,
      healthcheckPath: '/healthcheck',
      systemcheckPath: '/systemcheck',
      isDraining: () => draining,
      isReady: () => ready,
    });
    server = createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await egress?.close();
  });

  async function get(path: string, method = 'GET'): Promise<{ status: number; failure?: string; body: unknown }> {
    const r = await request(`${url}${path}`, { method: method as 'GET', reset: true, ...(method === 'POST' ? { body: '{}', headers: { 'content-type': 'application/json' } } : {}) });
    const text = await r.body.text();
    return { status: r.statusCode, failure: r.headers['x-broker-failure'] as string | undefined, body: text ? (JSON.parse(text) as unknown) : undefined };
  }

  it('healthcheck: one entry per tunnel of every connection, identifiers masked; 200 when any is open', async () => {
    conns = [running('corp github', 'github', 'a1b2c3d4-0000-4000-8000-00000000beef', [true, false], seen), running('corp gitlab', 'gitlab', 'f00dbabe-1111-4111-8111-00000000cafe', [false, false], seen)];
    const r = await get('/healthcheck');
    assert.equal(r.status, 200);
    const entries = r.body as Array<Record<string, unknown>>;
    assert.equal(entries.length, 4);
    assert.deepEqual(entries[0], {
      ok: true,
      websocketConnectionOpen: true,
      brokerServerUrl: 'https://broker.example/?connection_role=primary',
      version: '4.999.0',
      transport: 'websocket',
      identifier: 'a1b2-...-beef',
      friendlyName: 'corp github',
      type: 'github',
    });
    assert.deepEqual(
      entries.map((e) => [e.friendlyName, e.ok]),
      [
        ['corp github', true],
        ['corp github', false],
        ['corp gitlab', false],
        ['corp gitlab', false],
      ],
    );
    assert.ok(!JSON.stringify(entries).includes('00000000beef'), 'the identifier is never shown whole');
  });

  it('healthcheck: 500 when no tunnel is open, or no connection at all', async () => {
    conns = [running('corp github', 'github', 'a1b2c3d4-0000-4000-8000-00000000beef', [false, false], seen)];
    assert.equal((await get('/healthcheck')).status, 500);
    conns = [];
    const r = await get('/healthcheck');
    assert.equal(r.status, 500);
    assert.deepEqual(r.body, []);
  });

  it('/livez is 200; /readyz follows isReady and says draining', async () => {
    assert.equal((await get('/livez')).status, 200);
    ready = true;
    assert.equal((await get('/readyz')).status, 200);
    ready = false;
    const notReady = await get('/readyz');
    assert.equal(notReady.status, 503);
    assert.equal(notReady.failure, FAILURES.NOT_READY.reason);
    draining = true;
    assert.equal((await get('/readyz')).failure, FAILURES.CLIENT_DRAINING.reason);
    ready = true;
    draining = false;
  });

  it('/webhook/<type>/ goes to a connection of that type with an open tunnel', async () => {
    conns = [running('closed gitlab', 'gitlab', 'tok-gitlab-closed-1', [false, false], seen), running('open gitlab', 'gitlab', 'tok-gitlab-open-1', [false, true], seen), running('gh', 'github', 'tok-github-1', [true, true], seen)];
    seen.length = 0;
    const r = await get('/webhook/gitlab/some-id?x=1', 'POST');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { via: 'open gitlab' });
    assert.deepEqual(seen, ['open gitlab POST /webhook/gitlab/some-id?x=1']);
  });

  it("Snyk's fallbacks: github webhooks to a GHE or GitHub App connection, bitbucket-server to bearer-auth", async () => {
    conns = [running('ghe', 'github-enterprise', 'tok-ghe-000001', [true, true], seen), running('bb pat', 'bitbucket-server-bearer-auth', 'tok-bb-000001', [true, false], seen)];
    assert.deepEqual((await get('/webhook/github/abc', 'POST')).body, { via: 'ghe' });
    assert.deepEqual((await get('/webhook/bitbucket-server/abc', 'POST')).body, { via: 'bb pat' });
    conns = [running('app', 'github-server-app', 'tok-app-000001', [true, true], seen), running('gh', 'github', 'tok-gh-000001', [true, true], seen)];
    assert.deepEqual((await get('/webhook/github/abc', 'POST')).body, { via: 'gh' }, 'an exact type first');
  });

  it('no open connection of the type, another path, or an unknown type: 401 unknown-request-type', async () => {
    conns = [running('closed gitlab', 'gitlab', 'tok-gitlab-closed-1', [false, false], seen), running('gh', 'github', 'tok-github-1', [true, true], seen)];
    seen.length = 0;
    for (const [path, method] of [
      ['/webhook/gitlab/x', 'POST'],
      ['/webhook/jira/x', 'POST'],
      ['/webhook/github', 'POST'], // no trailing part: not /webhook/<type>/
      ['/api/v1/something', 'GET'],
      ['/', 'GET'],
    ] as const) {
      const r = await get(path, method);
      assert.equal(r.status, 401, path);
      assert.equal(r.failure, FAILURES.UNKNOWN_REQUEST_TYPE.reason, path);
    }
    assert.deepEqual(seen, []);
  });
});
