// The deployment's OAuth token (src/client/universal/oauth-token.ts) against the fake Snyk API:
// the wire format Snyk's simple-oauth2 client uses, reuse until near expiry (fake clock), one
// fetch shared by concurrent callers, invalidate(), and the errors (refused or not) without the
// secret in them.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createEgress, type Egress } from '../../src/http/egress.js';
import { SecretScrubber } from '../../src/observability/logger.js';
import { OAuthToken, OAuthTokenError, type OAuthTokenOptions } from '../../src/client/universal/oauth-token.js';
import { startFakeSnykApi, type FakeSnykApi } from '../support/fake-snyk-api.js';
import { freePort } from '../support/ports.js';
import { deferred } from './universal-helpers.js';

let egress: Egress;
let api: FakeSnykApi;

before(async () => {
  egress = await createEgress();
  api = await startFakeSnykApi({ connections: [] });
});
after(async () => {
  await api?.close();
  await egress?.close();
});

function tokenCalls(fake: FakeSnykApi = api): number {
  return fake.calls.filter((c) => c.path === '/oauth2/token').length;
}

function oauth(extra: Partial<OAuthTokenOptions> = {}, fake: FakeSnykApi = api): OAuthToken {
  return new OAuthToken({ egress, apiBaseUrl: fake.url, clientId: fake.clientId, clientSecret: fake.clientSecret, ...extra });
}

/** Whether the fake takes the bearer on a /hidden call (the connections list). */
async function accepted(fake: FakeSnykApi, authorization: string): Promise<boolean> {
  const res = await fetch(`${fake.url}/hidden/brokers/deployments/${fake.deploymentId}/connections?version=x`, { headers: { authorization } });
  await res.arrayBuffer();
  return res.status === 200;
}

/** A tiny token endpoint on 127.0.0.1 whose answers the test writes. */
async function customEndpoint(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

beforeEach(() => api.tokenEndpoint('up'));

describe('OAuthToken against the fake Snyk API', () => {
  it("sends Snyk's wire format and returns `bearer <jwt>` the API accepts", async () => {
    const before = api.calls.length;
    const value = await oauth().authorization();
    assert.match(value, /^bearer [A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const call = api.calls.slice(before).find((c) => c.path === '/oauth2/token')!;
    assert.equal(call.method, 'POST');
    assert.equal(call.headers.accept, 'application/json');
    assert.equal(call.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(call.headers.authorization, undefined, 'credentials go in the body, not HTTP Basic');
    const form = new URLSearchParams(call.body);
    assert.deepEqual([...form.keys()].sort(), ['client_id', 'client_secret', 'grant_type']);
    assert.equal(form.get('grant_type'), 'client_credentials');
    assert.equal(form.get('client_id'), api.clientId);
    assert.equal(form.get('client_secret'), api.clientSecret);
    assert.ok(await accepted(api, value));
  });

  it('reuses the token: one fetch for many sequential callers', async () => {
    const t = oauth();
    const n = tokenCalls();
    const first = await t.authorization();
    for (let i = 0; i < 5; i++) assert.equal(await t.authorization(), first);
    assert.equal(tokenCalls() - n, 1);
  });

  it('concurrent callers share one fetch', async () => {
    const t = oauth();
    const n = tokenCalls();
    const all = await Promise.all(Array.from({ length: 10 }, () => t.authorization()));
    assert.equal(tokenCalls() - n, 1);
    assert.equal(new Set(all).size, 1);
  });

  it('fetches again a minute before expiry (fake clock, 3600 s token)', async () => {
    let now = 1_000_000;
    const t = oauth({ now: () => now });
    const n = tokenCalls();
    const first = await t.authorization();
    now += 3_600_000 - 60_000 - 1;
    assert.equal(await t.authorization(), first, 'still more than a minute left');
    assert.equal(tokenCalls() - n, 1);
    now += 1;
    const second = await t.authorization();
    assert.notEqual(second, first);
    assert.equal(tokenCalls() - n, 2);
    assert.equal(await t.authorization(), second, 'the new one is reused');
    assert.equal(tokenCalls() - n, 2);
  });

  it('a short-lived token is fetched again with a quarter of its life left', async () => {
    const short = await startFakeSnykApi({ connections: [], tokenTtlSeconds: 100 });
    try {
      let now = 0;
      const t = oauth({ now: () => now }, short);
      const first = await t.authorization();
      now = 75_000 - 1;
      assert.equal(await t.authorization(), first);
      now = 75_000;
      assert.notEqual(await t.authorization(), first);
      assert.equal(tokenCalls(short), 2);
    } finally {
      await short.close();
    }
  });

  it('invalidate(): the next caller gets a new token', async () => {
    const t = oauth();
    const n = tokenCalls();
    const first = await t.authorization();
    t.invalidate();
    const second = await t.authorization();
    assert.notEqual(second, first);
    assert.equal(tokenCalls() - n, 2);
    assert.equal(await t.authorization(), second);
    assert.equal(tokenCalls() - n, 2);
  });

  it('after revokeAllTokens the cached token is refused by the API; invalidate() gets one it accepts', async () => {
    const t = oauth();
    const first = await t.authorization();
    api.revokeAllTokens();
    assert.equal(await accepted(api, first), false);
    t.invalidate();
    assert.ok(await accepted(api, await t.authorization()));
  });

  it('an invalidate() during a fetch does not let that fetch be cached', async () => {
    // The endpoint holds each answer until the test releases it; `arrived` says a request came.
    let issued = 0;
    let arrived = deferred<() => void>();
    const ep = await customEndpoint((_req, res) => {
      const n = ++issued;
      arrived.resolve(() => json(res, 200, { access_token: `tok-${n}`, token_type: 'bearer', expires_in: 3600 }));
    });
    const nextRequest = async () => {
      const release = await arrived.promise;
      arrived = deferred<() => void>();
      return release;
    };
    try {
      const t = new OAuthToken({ egress, apiBaseUrl: ep.url, clientId: 'id', clientSecret: 'secret-123' });
      const inFlight = t.authorization();
      const release1 = await nextRequest();
      t.invalidate();
      release1();
      assert.equal(await inFlight, 'bearer tok-1', 'its own caller still gets what it waited for');
      const next = t.authorization();
      const first = await Promise.race([next.then((v) => `answered from the cache: ${v}`), nextRequest().then((release) => (release(), 'fetched anew'))]);
      assert.equal(first, 'fetched anew', 'the token fetched before the invalidate is not reused');
      assert.equal(await next, 'bearer tok-2');
      assert.equal(await t.authorization(), 'bearer tok-2', 'a token fetched after it is cached');
      assert.equal(issued, 2);
    } finally {
      await ep.close();
    }
  });

  it('a wrong secret: OAuthTokenError refused=true, without the secret', async () => {
    const secret = 'wrong-secret-0123456789';
    const err = await oauth({ clientSecret: secret }).authorization().then(
      () => assert.fail('resolved'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof OAuthTokenError);
    assert.equal(err.refused, true);
    assert.equal(err.code, 'OAUTH_TOKEN_UNAVAILABLE');
    assert.match(err.message, /refused the client credentials/);
    assert.match(err.message, /invalid_client: client authentication failed/);
    assert.ok(!err.message.includes(secret));
    assert.ok(!err.message.includes(api.clientSecret));
  });

  it('an unknown client id is refused too', async () => {
    await assert.rejects(oauth({ clientId: 'someone-else' }).authorization(), (e: unknown) => e instanceof OAuthTokenError && e.refused);
  });

  it('endpoint down (503) or resetting: refused=false; a failure holds further fetches back (1 s, doubling), then the next try may succeed', async () => {
    let now = 1_000_000;
    const t = oauth({ now: () => now });
    const tokenCalls = () => api.calls.filter((c) => c.path === '/oauth2/token').length;
    api.tokenEndpoint('down');
    await assert.rejects(t.authorization(), (e: unknown) => e instanceof OAuthTokenError && !e.refused && /answered 503 without an access token/.test(e.message) && !e.message.includes(api.clientSecret));
    // Within the 1 s hold-back: the same error at once, no call to the endpoint.
    const held = tokenCalls();
    await assert.rejects(t.authorization(), /answered 503/);
    assert.equal(tokenCalls(), held);
    now += 1000;
    api.tokenEndpoint('reset');
    await assert.rejects(t.authorization(), (e: unknown) => e instanceof OAuthTokenError && !e.refused && /unreachable/.test(e.message) && !e.message.includes(api.clientSecret));
    // The second failure holds back 2 s.
    now += 1000;
    api.tokenEndpoint('up');
    await assert.rejects(t.authorization(), /unreachable/);
    now += 1000;
    assert.match(await t.authorization(), /^bearer /);
  });

  it('a refresh that fails keeps handing out the token until it expires', async () => {
    let now = 1_000_000;
    const t = oauth({ now: () => now });
    const first = await t.authorization();
    // Past the refresh point (a minute before expiry), not past expiry.
    now += 3_570_000;
    api.tokenEndpoint('down');
    try {
      assert.equal(await t.authorization(), first, 'the still valid token while the endpoint is down');
      assert.equal(await t.authorization(), first, 'also within the hold-back');
      now += 60_000;
      await assert.rejects(t.authorization(), /answered 503/, 'an expired token is never handed out');
    } finally {
      api.tokenEndpoint('up');
    }
  });

  it('nothing listening: refused=false naming the endpoint', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const err = await new OAuthToken({ egress, apiBaseUrl: url, clientId: 'id', clientSecret: 'secret-never-shown' }).authorization().catch((e: unknown) => e);
    assert.ok(err instanceof OAuthTokenError);
    assert.equal(err.refused, false);
    assert.ok(err.message.includes(`${url}/oauth2/token`));
    assert.match(err.message, /unreachable/);
    assert.ok(!err.message.includes('secret-never-shown'));
  });

  it('a hung endpoint fails after timeoutMs, refused=false', async () => {
    const ep = await customEndpoint(() => undefined);
    try {
      const err = await new OAuthToken({ egress, apiBaseUrl: ep.url, clientId: 'id', clientSecret: 'secret-123', timeoutMs: 200 }).authorization().catch((e: unknown) => e);
      assert.ok(err instanceof OAuthTokenError);
      assert.equal(err.refused, false);
    } finally {
      await ep.close();
    }
  });

  it('each new token is added to the scrubber', async () => {
    const scrubber = new SecretScrubber();
    const value = await oauth({ scrubber }).authorization();
    const jwt = value.slice('bearer '.length);
    assert.equal(scrubber.scrub(`token is ${jwt}`), 'token is [REDACTED]');
  });
});

describe('OAuthToken answers the fake does not give', () => {
  it('400 with an OAuth error is refused; other statuses, bad JSON or no access_token are not', async () => {
    const answers: Array<[number, string, boolean, RegExp]> = [
      [400, JSON.stringify({ error: 'invalid_request', error_description: 'bad grant' }), true, /invalid_request: bad grant/],
      [401, 'not json', true, /HTTP 401/],
      [500, JSON.stringify({ error: 'server_error' }), false, /answered 500/],
      [200, 'not json', false, /answered 200 without an access token/],
      [200, JSON.stringify({ token_type: 'bearer', expires_in: 10 }), false, /without an access token/],
      [200, JSON.stringify({ access_token: '', token_type: 'bearer' }), false, /without an access token/],
      [200, JSON.stringify({ access_token: 42 }), false, /without an access token/],
    ];
    let i = 0;
    const ep = await customEndpoint((_req, res) => {
      const [status, body] = answers[i++]!;
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
    try {
      for (const [status, body, refused, message] of answers) {
        const err = await new OAuthToken({ egress, apiBaseUrl: ep.url, clientId: 'id', clientSecret: 'the-secret-value' }).authorization().catch((e: unknown) => e);
        assert.ok(err instanceof OAuthTokenError, `${status} ${body}`);
        assert.equal(err.refused, refused, `${status} ${body}`);
        assert.match(err.message, message);
        assert.ok(!err.message.includes('the-secret-value'));
      }
    } finally {
      await ep.close();
    }
  });

  it('no token_type means bearer; no expires_in keeps it an hour (minus the minute)', async () => {
    let n = 0;
    const ep = await customEndpoint((_req, res) => json(res, 200, { access_token: `opaque-${++n}` }));
    try {
      let now = 0;
      const t = new OAuthToken({ egress, apiBaseUrl: ep.url, clientId: 'id', clientSecret: 'secret-123', now: () => now });
      assert.equal(await t.authorization(), 'bearer opaque-1');
      now = 3_540_000 - 1;
      assert.equal(await t.authorization(), 'bearer opaque-1');
      now = 3_540_000;
      assert.equal(await t.authorization(), 'bearer opaque-2');
    } finally {
      await ep.close();
    }
  });

  it("the server's token_type is kept as it is", async () => {
    const ep = await customEndpoint((_req, res) => json(res, 200, { access_token: 'abc', token_type: 'Bearer', expires_in: 60 }));
    try {
      assert.equal(await new OAuthToken({ egress, apiBaseUrl: ep.url, clientId: 'id', clientSecret: 'secret-123' }).authorization(), 'Bearer abc');
    } finally {
      await ep.close();
    }
  });
});
