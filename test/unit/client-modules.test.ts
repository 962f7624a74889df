// Unit tests of the client's smaller modules: response-data writer, allocation helpers, relay
// header shaping, placement query, proxy bypass.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { createEgress } from '../../src/http/egress.js';
import { listen, closeServer } from '../../src/http/server-helpers.js';
import { silentLogger } from '../../src/observability/logger.js';
import { decodeTunnelAnswer, readResponseHead } from '../../src/protocol/index.js';
import { createResponseWriter, ResponseUploadError } from '../../src/client/response-writer.js';
import { responseDataUrl } from '../../src/client/response-data-url.js';
import { parseAllocation, parseRetryAfter, allocationUrl } from '../../src/client/allocation.js';
import { applyVarSubstitution } from '../../src/client/var-substitution.js';
import { originHeaders, stripContext } from '../../src/client/origin-request.js';
import { errorTypeForStatus } from '../../src/client/origin-egress.js';
import { placementQuery, tunnelUrl } from '../../src/client/tunnel.js';
import { bypassesProxy } from '../../src/client/proxy-agent.js';
import { maskCredential } from '../../src/client/systemcheck.js';
import { freePort } from '../support/ports.js';

interface Upload {
  url: string;
  headers: IncomingMessage['headers'];
  status: number;
  body: Buffer;
}

/** A stand-in broker server recording every POST /response-data, and a writer aimed at it; closed after the test. */
async function uploadSink(t: TestContext) {
  const got: Upload[] = [];
  const server = createServer(async (req, res) => {
    const head = await readResponseHead(req);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    got.push({ url: req.url!, headers: req.headers, status: head.status, body: Buffer.concat(chunks) });
    res.end('{}');
  });
  const port = await listen(server, 0, '127.0.0.1');
  const egress = await createEgress();
  t.after(async () => {
    await egress.close();
    await closeServer(server);
  });
  const writer = createResponseWriter({ egress, token: 'tok-123456', wireVersion: 'v1', postTimeoutMs: 10_000, logger: silentLogger() });
  return { got, port, writer };
}

test('response writer streams head + body with the contract headers', async (t) => {
  const { got, port, writer } = await uploadSink(t);
  const parts = Array.from({ length: 64 }, (_, i) => Buffer.alloc(64 * 1024, i));
  const expected = createHash('sha256');
  for (const p of parts) expected.update(p);
  const { bytes } = await writer.send(
    { serverUrl: `http://127.0.0.1:${port}`, serverId: '3', role: 'secondary', streamingID: 's-1', requestId: 'r-1', requestHeaders: { 'snyk-acting-org-public-id': 'org' } },
    { status: 201, headers: { a: 'b' } },
    Readable.from(parts),
  );
  assert.equal(bytes, 64 * 64 * 1024);
  const g = got[0]!;
  assert.equal(g.url, '/response-data/tok-123456/s-1?server_id=3&connection_role=secondary');
  assert.equal(g.status, 201);
  assert.equal(g.body.length, bytes);
  assert.equal(createHash('sha256').update(g.body).digest('hex'), expected.digest('hex'));
  assert.equal(g.headers['content-type'], 'application/vnd.broker.stream+octet-stream');
  assert.equal(g.headers['snyk-request-id'], 'r-1');
  assert.equal(g.headers['snyk-acting-org-public-id'], 'org');
  assert.equal(g.headers['snyk-broker-retry-count'], '0');
});

test('response writer retries a refused connection, then gives up with a typed error', async (t) => {
  const egress = await createEgress();
  t.after(() => egress.close());
  const port = await freePort();
  const writer = createResponseWriter({ egress, token: 'tok-123456', wireVersion: 'v1', postTimeoutMs: 10_000, logger: silentLogger(), retries: 2, retryDelayMs: 10 });
  let pulled = false;
  const body = new Readable({ read() { pulled = true; this.push(null); } });
  await assert.rejects(
    writer.send({ serverUrl: `http://127.0.0.1:${port}`, role: 'primary', streamingID: 's', requestId: 'r', requestHeaders: {} }, { status: 200 }, body),
    (err: unknown) => err instanceof ResponseUploadError && /ECONNREFUSED/.test(err.message),
  );
  assert.equal(pulled, false, 'origin body was consumed although nothing could be sent');
});

test('response writer: a small answer of known size goes over the tunnel when offered; a refused frame, a large or unknown-size answer go by POST', async (t) => {
  const { got: posted, port, writer } = await uploadSink(t);
  const frames: Buffer[] = [];
  let accept = true;
  const target = {
    serverUrl: `http://127.0.0.1:${port}`,
    role: 'primary',
    streamingID: 's-1.7',
    requestId: 'r',
    requestHeaders: {},
    overTunnel: async (frame: Buffer) => (frames.push(frame), accept),
  };
  const sized = (text: string) => ({ status: 200, headers: { 'content-length': String(Buffer.byteLength(text)) } });
  assert.deepEqual(await writer.send(target, sized('hello'), Readable.from([Buffer.from('hel'), Buffer.from('lo')])), { bytes: 5, via: 'tunnel' });
  const decoded = decodeTunnelAnswer(frames[0]!);
  assert.equal(decoded.streamingID, 's-1.7');
  assert.equal(decoded.head.status, 200);
  assert.equal(decoded.body.toString(), 'hello');
  assert.equal(posted.length, 0, 'nothing posted when the frame went');
  accept = false;
  assert.deepEqual(await writer.send(target, sized('again'), Readable.from([Buffer.from('again')])), { bytes: 5, via: 'response-data' });
  const again = posted.pop()!;
  assert.deepEqual([again.status, again.body.toString()], [200, 'again'], 'a frame the tunnel could not take is posted instead');
  accept = true;
  const before = frames.length;
  const big = 'x'.repeat(64 * 1024 + 1);
  assert.equal((await writer.send(target, sized(big), Readable.from([Buffer.from(big)]))).via, 'response-data');
  assert.equal((await writer.send(target, { status: 200 }, Readable.from([Buffer.from('unknown size')]))).via, 'response-data');
  assert.equal(frames.length, before, 'large and unknown-size answers never go as a frame');
  assert.deepEqual(posted.map((p) => p.body.length), [big.length, 'unknown size'.length]);
});

test('response-data url omits a falsy server id', () => {
  assert.equal(responseDataUrl({ serverUrl: 'http://s/', role: 'primary', streamingID: 'x', serverId: 0 }, 't'), 'http://s/response-data/t/x?connection_role=primary');
  assert.equal(responseDataUrl({ serverUrl: 'http://s', role: 'primary', streamingID: 'x', serverId: '0' }, 't'), 'http://s/response-data/t/x?server_id=0&connection_role=primary');
});

test('placement query and tunnel url follow the real client (number 0 omitted, "0" kept)', () => {
  assert.equal(placementQuery({ serverUrl: 'http://s', serverId: 0 }, 'primary'), 'connection_role=primary');
  assert.equal(placementQuery({ serverUrl: 'http://s', serverId: '0' }, 'secondary'), 'server_id=0&connection_role=secondary');
  assert.equal(tunnelUrl({ serverUrl: 'https://b.example:8443', serverId: 7 }, 'tok', 'primary'), 'wss://b.example:8443/primus/tok/?server_id=7&connection_role=primary&EIO=4&transport=websocket');
});

test('allocation answers: server_id string or number, optional server_url, errors', () => {
  assert.deepEqual(parseAllocation({ data: { attributes: { server_id: '0' } } }, 'http://s'), { serverUrl: 'http://s', serverId: '0' });
  // Another host than BROKER_SERVER_URL's: ignored (the token goes only where configured) unless trusted.
  const untrusted: string[] = [];
  assert.deepEqual(parseAllocation({ data: { attributes: { server_id: 4, server_url: 'http://pod-4:7341/' } } }, 'http://s', { onUntrusted: (u) => untrusted.push(u) }), { serverUrl: 'http://s', serverId: 4 });
  assert.deepEqual(untrusted, ['http://pod-4:7341']);
  assert.deepEqual(parseAllocation({ data: { attributes: { server_id: 4, server_url: 'http://pod-4:7341/' } } }, 'http://s', { trustServerUrl: true }), { serverUrl: 'http://pod-4:7341', serverId: 4, fallbackUrl: 'http://s' });
  // The same host name (another port or scheme) is the operator's own: used.
  assert.deepEqual(parseAllocation({ data: { attributes: { server_id: 6, server_url: 'https://S:8443/' } } }, 'http://s'), { serverUrl: 'https://S:8443', serverId: 6, fallbackUrl: 'http://s' });
  assert.deepEqual(parseAllocation({ data: { attributes: { server_id: 5, server_url: 'http://s' } } }, 'http://s'), { serverUrl: 'http://s', serverId: 5 });
  assert.throws(() => parseAllocation({ data: {} }, 'http://s'), /data.attributes/);
  assert.throws(() => parseAllocation({ data: { attributes: { server_id: {} } } }, 'http://s'), /server_id/);
  assert.throws(() => parseAllocation({ data: { attributes: { server_id: '1', server_url: 'ftp://x' } } }, 'http://s'), /server_url/);
  assert.equal(allocationUrl({ dispatcherBaseUrl: 'http://d', dispatcherUrlPrefix: '/hidden/broker', token: 'b9460892-5397-48f1-8697-488769ae3797', clientId: 'c1' }), 'http://d/hidden/broker/cfd7ce253dee93e33e9dc1e7ce385459626c9dd65da1bd55a1719fce297f547c/connections/c1?version=2022-12-01%7Eexperimental');
});

test('Retry-After in seconds or as a date', () => {
  assert.equal(parseRetryAfter('3'), 3000);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
  assert.equal(parseRetryAfter(undefined), undefined);
  assert.equal(parseRetryAfter('soon'), undefined);
});

test('errorType from origin status', () => {
  assert.equal(errorTypeForStatus(200), undefined);
  assert.equal(errorTypeForStatus(404), undefined);
  assert.equal(errorTypeForStatus(401), 'DOWNSTREAM_UNAUTHORIZED');
  assert.equal(errorTypeForStatus(403), 'DOWNSTREAM_FORBIDDEN');
  assert.equal(errorTypeForStatus(429), 'DOWNSTREAM_RATE_LIMITED');
  assert.equal(errorTypeForStatus(503), 'DOWNSTREAM_SERVER_ERROR');
  assert.equal(errorTypeForStatus(418), 'DOWNSTREAM_UNEXPECTED');
});

test('leading /ctx/<uuid> is stripped, other paths untouched', () => {
  assert.deepEqual(stripContext('/ctx/2222a0b1-1111-4111-8111-111111111111/echo/x?y=1'), { url: '/echo/x?y=1', contextId: '2222a0b1-1111-4111-8111-111111111111' });
  assert.deepEqual(stripContext('/ctx/not-a-uuid/x'), { url: '/ctx/not-a-uuid/x' });
  assert.deepEqual(stripContext('/echo/ctx/2222a0b1-1111-4111-8111-111111111111'), { url: '/echo/ctx/2222a0b1-1111-4111-8111-111111111111' });
});

test('origin headers: platform-only and hop-by-hop headers removed, credentials and ids added', () => {
  const h = originHeaders(
    {
      url: '/x',
      method: 'GET',
      streamingID: '',
      headers: { host: 'platform', 'content-length': '3', connection: 'keep-alive', 'snyk-acting-org-public-id': 'o', 'snyk-flow-name': 'f', 'user-agent': 'curl/8', 'x-forwarded-for': '1.2.3.4', accept: '*/*' },
    },
    'req-1',
    'Bearer abc',
    'v9',
    true,
  );
  assert.deepEqual(h, { accept: '*/*', 'x-broker-origin-ua': 'curl/8', 'user-agent': 'Snyk Broker Client v9', 'x-request-id': 'req-1', authorization: 'Bearer abc' });
});

test('NO_PROXY matching', () => {
  const u = new URL('https://broker.snyk.io');
  assert.equal(bypassesProxy(u, undefined), false);
  assert.equal(bypassesProxy(u, '*'), true);
  assert.equal(bypassesProxy(u, 'snyk.io'), true);
  assert.equal(bypassesProxy(u, '.snyk.io'), true);
  assert.equal(bypassesProxy(u, 'other.io,broker.snyk.io:443'), true);
  assert.equal(bypassesProxy(u, 'broker.snyk.io:8443'), false);
  assert.equal(bypassesProxy(u, 'nyk.io'), false);
});

test('credentials are masked for /systemcheck', () => {
  assert.equal(maskCredential('abcdefxyz'), 'abc***xyz');
  assert.equal(maskCredential('short'), '***');
});

test('BROKER_VAR_SUB and x-broker-var-sub substitute variables; the token and prototypes are off limits', () => {
  const vars = { BROKER_CLIENT_URL: 'http://client:7341', BROKER_TOKEN: 'tok-secret' };
  const body = JSON.stringify({ config: { url: '${BROKER_CLIENT_URL}/webhook/github/x', secret: '${BROKER_TOKEN}' }, other: '${BROKER_CLIENT_URL}', BROKER_VAR_SUB: ['config.url', 'config.secret', '__proto__.polluted'] });
  const out = applyVarSubstitution({ url: '/x', method: 'POST', streamingID: '', body: Buffer.from(body), headers: { 'x-broker-var-sub': 'x-hook', 'x-hook': '${BROKER_CLIENT_URL}/h', 'x-other': '${BROKER_CLIENT_URL}' } }, vars);
  const parsed = JSON.parse(out.body!.toString());
  assert.deepEqual(parsed, { config: { url: 'http://client:7341/webhook/github/x', secret: '' }, other: '${BROKER_CLIENT_URL}' });
  assert.equal(out.headers['x-hook'], 'http://client:7341/h');
  assert.equal(out.headers['x-other'], '${BROKER_CLIENT_URL}');
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  const untouched = applyVarSubstitution({ url: '/x', method: 'POST', streamingID: '', body: 'not json', headers: {} }, vars);
  assert.equal(untouched.body, 'not json');
});

test('DISABLE_*_VARS_SUBSTITUTION is on for every value the config accepts as true (true, yes, 1), off for false/no/0', () => {
  const req = () => ({ url: '/x', method: 'POST', streamingID: '', body: Buffer.from(JSON.stringify({ u: '${V}', BROKER_VAR_SUB: ['u'] })), headers: { 'x-broker-var-sub': 'x-h', 'x-h': '${V}' } });
  for (const on of ['true', 'YES', '1']) {
    const out = applyVarSubstitution(req(), { V: 'v', DISABLE_BODY_VARS_SUBSTITUTION: on, DISABLE_HEADER_VARS_SUBSTITUTION: on });
    assert.equal(JSON.parse(out.body!.toString()).u, '${V}', `body substituted with ${on}`);
    assert.equal(out.headers['x-h'], '${V}', `header substituted with ${on}`);
  }
  for (const off of ['false', 'no', '0', undefined]) {
    const out = applyVarSubstitution(req(), { V: 'v', DISABLE_BODY_VARS_SUBSTITUTION: off, DISABLE_HEADER_VARS_SUBSTITUTION: off });
    assert.equal(JSON.parse(out.body!.toString()).u, 'v', `body not substituted with ${off}`);
    assert.equal(out.headers['x-h'], 'v', `header not substituted with ${off}`);
  }
});
