import { test } from 'node:test';
import assert from 'node:assert/strict';
import { answerHeaders, parseBrokerPath, relayHeaders, requestIdOf, stripConnectionRole } from '../../src/server/platform-request.js';
import { checkClientVersion } from '../../src/server/version-gate.js';
import { tunnelTokenOf } from '../../src/server/tunnel-accept.js';

const T = 'b9460892-5397-48f1-8697-488769ae3797';

test('broker path: token lowercased, prefix, /ctx/<uuid>/ and connection_role removed, rest kept byte for byte', () => {
  assert.deepEqual(parseBrokerPath(`/broker/${T.toUpperCase()}/echo/hello?x=1`), { token: T, url: '/echo/hello?x=1', contextId: undefined });
  assert.deepEqual(parseBrokerPath(`/broker/${T}/ctx/22222222-2222-4222-8222-222222222222/echo/with-context`), {
    token: T,
    url: '/echo/with-context',
    contextId: '22222222-2222-4222-8222-222222222222',
  });
  assert.deepEqual(parseBrokerPath(`/broker/${T}/a/b?connection_role=primary&q=a%20b&connection_role=x`), { token: T, url: '/a/b?q=a%20b', contextId: undefined });
  assert.deepEqual(parseBrokerPath(`/broker/${T}`), { token: T, url: '/', contextId: undefined });
  assert.equal(parseBrokerPath('/other/x'), undefined);
  assert.equal(stripConnectionRole('connection_role=primary'), '');
  assert.equal(stripConnectionRole('a=1&b=2'), 'a=1&b=2');
});

test('request id: first UUID among the known headers, else a fresh UUID', () => {
  const u1 = '11111111-1111-4111-8111-111111111111';
  const u2 = '22222222-2222-4222-8222-222222222222';
  assert.equal(requestIdOf({ 'x-request-id': 'not-a-uuid', 'snyk-request-id': u1, 'x-github-delivery': u2 }), u1);
  assert.equal(requestIdOf({ 'x-akamai-request-id': u2, 'snyk-request-id': u1 }), u2);
  const fresh = requestIdOf({});
  assert.match(fresh, /^[0-9a-f-]{36}$/);
  assert.notEqual(fresh, requestIdOf({}));
});

test('relayed headers drop hop-by-hop ones and carry the request and context ids', () => {
  const h = relayHeaders({ host: 'x', connection: 'keep-alive', 'transfer-encoding': 'chunked', 'x-custom': 'abc', 'set-cookie': ['a', 'b'] }, 'rid', 'ctx');
  assert.deepEqual(h, { host: 'x', 'x-custom': 'abc', 'set-cookie': ['a', 'b'], 'snyk-request-id': 'rid', 'x-snyk-broker-context-id': 'ctx' });
  assert.deepEqual(answerHeaders({ 'Content-Type': 'text/plain', 'transfer-encoding': 'chunked', 'x-n': 5, 'bad header': 'x', 'set-cookie': ['a'] }), {
    'content-type': 'text/plain',
    'x-n': '5',
    'set-cookie': ['a'],
  });
});

test('version gate: local and our client pass, old snyk clients are refused or warned, unreadable versions are let in', () => {
  const gate = (v: string, caps: string[] = []) => checkClientVersion(v, caps, '4.100.0', '4.182.0').kind;
  assert.equal(gate('local'), 'accept');
  assert.equal(gate('0.1.0', ['post-streams', 'ha-broker/1']), 'accept');
  assert.equal(gate('0.1.0'), 'refuse');
  assert.equal(gate('4.99.9'), 'refuse');
  assert.equal(gate('pre-4.27'), 'refuse');
  assert.equal(gate('4.150.0'), 'warn');
  assert.equal(gate('4.182.0'), 'accept');
  assert.equal(gate('5.22.14+ha-broker.0.1.0'), 'accept');
  assert.equal(gate('nightly'), 'unreadable');
});

test('tunnel token comes from /primus/<token>/ only', () => {
  assert.equal(tunnelTokenOf(`/primus/${T.toUpperCase()}/?EIO=4&transport=polling`), T);
  assert.equal(tunnelTokenOf(`/primus/${T}?EIO=4`), T);
  assert.equal(tunnelTokenOf(`/primus/${T}/extra/?EIO=4`), undefined);
  assert.equal(tunnelTokenOf('/primus//'), undefined);
  assert.equal(tunnelTokenOf('/elsewhere/x/'), undefined);
});
