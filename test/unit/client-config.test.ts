import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadClientConfig } from '../../src/config/client.js';
import { configProblems } from '../support/config-problems.js';
import { writeAcceptFile } from '../support/client-harness.js';

const TOKEN = 'b9460892-5397-48f1-8697-488769ae3797';
const rules = { private: [{ method: 'GET', path: '/*', origin: 'https://${GH_USER}:${GH_PASS}@${GH_HOST}', auth: undefined }], public: [{ method: 'POST', path: '/webhook/*' }] };

const problems = (env: Record<string, string>) => configProblems(loadClientConfig, env);

test('a valid environment gives the documented defaults', async () => {
  const accept = await writeAcceptFile(rules);
  const c = await loadClientConfig({ BROKER_TOKEN: TOKEN, BROKER_SERVER_URL: 'https://broker.example.com/', ACCEPT: accept, GH_USER: 'u', GH_PASS: 'pass-secret-1', GH_HOST: 'ghe.local' });
  assert.equal(c.serverUrl, 'https://broker.example.com');
  assert.equal(c.port, 7341);
  assert.equal(c.haMode, false);
  assert.equal(c.pingIntervalMs, 25_000);
  assert.equal(c.pongTimeoutMs, 10_000);
  assert.equal(c.connectTimeoutMs, 10_000);
  assert.equal(c.drainGraceMs, 25_000);
  assert.equal(c.dispatcherUrlPrefix, '/hidden/broker');
  assert.equal(c.dispatcherBaseUrl, 'https://api.example.com');
  assert.equal(c.preflightEnabled, true);
  assert.match(c.clientId, /^[0-9a-f-]{36}$/);
  assert.ok(c.secrets.includes(TOKEN));
  assert.ok(c.secrets.includes('pass-secret-1'), 'credential from accept vars not scrubbed');
});

test('dispatcher base: API_BASE_URL, then BROKER_DISPATCHER_BASE_URL, then broker.→api.', async () => {
  const accept = await writeAcceptFile({ private: [], public: [] });
  const base = { BROKER_TOKEN: TOKEN, ACCEPT: accept };
  assert.equal((await loadClientConfig({ ...base, BROKER_SERVER_URL: 'https://broker.eu.snyk.io' })).dispatcherBaseUrl, 'https://api.eu.snyk.io');
  assert.equal((await loadClientConfig({ ...base, BROKER_SERVER_URL: 'https://broker2.snyk.io' })).dispatcherBaseUrl, 'https://api.snyk.io');
  assert.equal((await loadClientConfig({ ...base, BROKER_SERVER_URL: 'http://127.0.0.1:1', BROKER_DISPATCHER_BASE_URL: 'http://d:1/' })).dispatcherBaseUrl, 'http://d:1');
  assert.equal((await loadClientConfig({ ...base, BROKER_SERVER_URL: 'http://127.0.0.1:1', BROKER_DISPATCHER_BASE_URL: 'http://d:1', API_BASE_URL: 'http://a:2' })).dispatcherBaseUrl, 'http://a:2');
});

test('missing BROKER_TOKEN is named; BROKER_SERVER_URL defaults to Snyk\'s US server as in Snyk\'s images', async () => {
  const accept = await writeAcceptFile({ private: [], public: [] });
  const p = await problems({ ACCEPT: accept });
  assert.ok(p.some((x) => x.startsWith('BROKER_TOKEN is required')));
  assert.ok(!p.some((x) => x.startsWith('BROKER_SERVER_URL')), JSON.stringify(p));
  const c = await loadClientConfig({ BROKER_TOKEN: TOKEN, ACCEPT: accept });
  assert.equal(c.serverUrl, 'https://broker.snyk.io');
  assert.equal(c.dispatcherBaseUrl, 'https://api.snyk.io');
});

test('malformed values are named', async () => {
  const accept = await writeAcceptFile({ private: [], public: [] });
  const p = await problems({ BROKER_TOKEN: TOKEN, BROKER_SERVER_URL: 'ftp://x', ACCEPT: accept, PORT: 'seventy', BROKER_HA_MODE_ENABLED: 'maybe', SOCKET_PING_INTERVAL: '-5', LOG_LEVEL: 'loud', BROKER_CLIENT_ID: 'has spaces' });
  for (const name of ['BROKER_SERVER_URL', 'PORT', 'BROKER_HA_MODE_ENABLED', 'SOCKET_PING_INTERVAL', 'LOG_LEVEL', 'BROKER_CLIENT_ID']) {
    assert.ok(p.some((x) => x.startsWith(name)), `${name} not named in ${JSON.stringify(p)}`);
  }
});

test('an unreadable ACCEPT file is named', async () => {
  const p = await problems({ BROKER_TOKEN: TOKEN, BROKER_SERVER_URL: 'http://s', ACCEPT: '/nonexistent/accept.json' });
  assert.ok(p.some((x) => x.startsWith('ACCEPT:') && x.includes('/nonexistent/accept.json')), JSON.stringify(p));
});

test('an invalid ACCEPT file is named', async () => {
  const accept = await writeAcceptFile({ private: [{ path: '/x', method: 'FETCH' }] });
  const p = await problems({ BROKER_TOKEN: TOKEN, BROKER_SERVER_URL: 'http://s', ACCEPT: accept });
  assert.ok(p.some((x) => x.includes(accept)), JSON.stringify(p));
});

test('unset ${VAR}s of the accept rules: the start goes on, with one warning naming them and how many rules use them', async () => {
  const accept = await writeAcceptFile({ private: [...rules.private, { method: 'GET', path: '/two', origin: 'https://${GH_HOST}', auth: { scheme: 'bearer', token: '${GH_PASS}' } }], public: [] });
  const c = await loadClientConfig({ BROKER_TOKEN: TOKEN, BROKER_SERVER_URL: 'http://s', ACCEPT: accept, GH_HOST: 'h' });
  const warnings = c.startNotes.filter((n) => n.level === 'warn' && /unset variables/.test(n.message));
  assert.equal(warnings.length, 1, JSON.stringify(c.startNotes));
  assert.match(warnings[0]!.message, /GH_USER \(1 rule\)/);
  assert.match(warnings[0]!.message, /GH_PASS \(2 rules\)/);
  assert.doesNotMatch(warnings[0]!.message, /GH_HOST/);
});

test('HTTPS_CERT without HTTPS_KEY is refused', async () => {
  const accept = await writeAcceptFile({ private: [], public: [] });
  const p = await problems({ BROKER_TOKEN: TOKEN, BROKER_SERVER_URL: 'http://s', ACCEPT: accept, HTTPS_CERT: '/x.pem' });
  assert.ok(p.some((x) => x.includes('HTTPS_CERT')));
});

test('proxy and validation credentials are collected for the log scrubber', async () => {
  const accept = await writeAcceptFile({ private: [], public: [] });
  const c = await loadClientConfig({
    BROKER_TOKEN: TOKEN,
    BROKER_SERVER_URL: 'http://s',
    ACCEPT: accept,
    HTTPS_PROXY: 'http://proxyuser:proxy-pass-1@proxy:3128',
    BROKER_CLIENT_VALIDATION_URL: 'http://ghe/api',
    BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER: 'token ghp_validation_secret',
  });
  assert.ok(c.secrets.includes('proxy-pass-1'));
  assert.ok(c.secrets.includes('ghp_validation_secret'));
  assert.equal(c.validation?.method, 'GET');
});
