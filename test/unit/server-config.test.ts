import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadServerConfig, serverIdFromHostname } from '../../src/config/server.js';
import { ConfigError } from '../../src/config/errors.js';
import { SERVER_ENV_HELP } from '../../src/config/server-help.js';

test('defaults match the contract (port 7341, pings 25 s / 20 s, frame cap 22020096, 60 s answer wait)', async () => {
  const c = await loadServerConfig({});
  assert.equal(c.port, 7341);
  assert.equal(c.pingIntervalMs, 25_000);
  assert.equal(c.pingTimeoutMs, 20_000);
  assert.equal(c.maxFrameBytes, 22_020_096);
  assert.equal(c.requestTimeoutMs, 60_000);
  assert.equal(c.drainGraceMs, 25_000);
  assert.equal(c.bodyLimitBytes, 10 * 1024 * 1024);
  assert.equal(c.dispatcherUrl, undefined);
  assert.equal(c.dispatcherVersion, '2022-12-02~experimental');
  assert.equal(c.publicRules, undefined, 'without ACCEPT every platform path is allowed');
  assert.equal(c.privateRules, undefined, 'without ACCEPT webhooks are refused');
  assert.equal(c.serverId, '0');
});

test('server id: BROKER_SERVER_ID, else the HOSTNAME part after the last "-"; peer URL defaults to http://$HOSTNAME:$PORT', async () => {
  assert.equal(serverIdFromHostname('broker-server-2'), '2');
  assert.equal(serverIdFromHostname('standalonehost'), 'standalonehost');
  assert.equal(serverIdFromHostname(undefined), '0');
  const c = await loadServerConfig({ HOSTNAME: 'broker-server-7', PORT: '8000' });
  assert.equal(c.serverId, '7');
  assert.equal(c.peerUrl, 'http://broker-server-7:8000');
  assert.equal(c.healthCheckLink, 'http://broker-server-7/healthcheck');
  const d = await loadServerConfig({ HOSTNAME: 'broker-server-7', BROKER_SERVER_ID: 'b', BROKER_SERVER_PEER_URL: 'http://peer:1/', DISPATCHER_URL: 'http://d:9/' });
  assert.equal(d.serverId, 'b');
  assert.equal(d.peerUrl, 'http://peer:1');
  assert.equal(d.dispatcherUrl, 'http://d:9');
});

test('every bad variable is named in one ConfigError', async () => {
  await assert.rejects(
    loadServerConfig({
      PORT: 'x',
      SOCKET_PING_INTERVAL: '-1',
      DISPATCHER_URL: 'not a url',
      BROKER_SERVER_REQUEST_TIMEOUT_MS: 'soon',
      LOG_LEVEL: 'chatty',
      MINIMAL_SUPPORTED_BROKER_VERSION: 'four',
      ACCEPT: '/nonexistent/accept.json',
    }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      for (const name of ['PORT', 'SOCKET_PING_INTERVAL', 'DISPATCHER_URL', 'BROKER_SERVER_REQUEST_TIMEOUT_MS', 'LOG_LEVEL', 'MINIMAL_SUPPORTED_BROKER_VERSION', 'ACCEPT']) {
        assert.match(e.message, new RegExp(name));
      }
      return true;
    },
  );
});

test('a body limit that cannot fit one tunnel message (base64) is refused naming both variables', async () => {
  await assert.rejects(loadServerConfig({ BROKER_SERVER_BODY_LIMIT: '20000000' }), (e: unknown) => e instanceof ConfigError && /BROKER_SERVER_BODY_LIMIT/.test(e.message) && /SOCKET_MAX_RESPONSE_LENGTH/.test(e.message));
  const c = await loadServerConfig({ BROKER_SERVER_BODY_LIMIT: '20000000', SOCKET_MAX_RESPONSE_LENGTH: '30000000' });
  assert.equal(c.bodyLimitBytes, 20_000_000);
});

test('ACCEPT: rules load, a missing ${VAR} is a config error naming it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'server-config-'));
  const file = join(dir, 'accept.json');
  await writeFile(file, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [{ method: 'any', path: '/*', origin: '${API_ORIGIN}' }] }));
  const c = await loadServerConfig({ ACCEPT: file, API_ORIGIN: 'http://127.0.0.1:1' });
  assert.ok(c.publicRules && c.privateRules);
  assert.equal(c.privateRules.match({ method: 'POST', url: '/webhook/x', headers: {} }).allowed, true);
  await assert.rejects(loadServerConfig({ ACCEPT: file }), (e: unknown) => e instanceof ConfigError && /API_ORIGIN/.test(e.message));
  await writeFile(file, '{not json');
  await assert.rejects(loadServerConfig({ ACCEPT: file }), (e: unknown) => e instanceof ConfigError && /ACCEPT/.test(e.message));
});

test('--help text documents every variable the server reads', async () => {
  const { readFile } = await import('node:fs/promises');
  const source = (await Promise.all(['server.ts', 'server-auth.ts'].map((f) => readFile(new URL(`../../../src/config/${f}`, import.meta.url), 'utf8')))).join('\n');
  const names = [...source.matchAll(/r\.(?:string|int|port|bool|url|enumOf|required|raw)\('([A-Z_]+)'/g)].map((m) => m[1]!);
  assert.ok(names.length > 15);
  for (const name of new Set(names)) assert.match(SERVER_ENV_HELP, new RegExp(`\\b${name}\\b`), `${name} missing from SERVER_ENV_HELP`);
});

test('mandatory auth: off by default; on, it needs GATEWAY_HOSTNAME; AUTHORIZATION_SERVICE defaults to it; stale limits follow snyk-broker', async () => {
  assert.equal((await loadServerConfig({})).mandatoryAuth, undefined);
  assert.equal((await loadServerConfig({ BROKER_SERVER_MANDATORY_AUTH_ENABLED: 'false', GATEWAY_HOSTNAME: 'not a url' })).mandatoryAuth, undefined, 'off: the other variables are not read');
  const c = await loadServerConfig({ BROKER_SERVER_MANDATORY_AUTH_ENABLED: 'true', GATEWAY_HOSTNAME: 'https://gw.example/' });
  assert.deepEqual(c.mandatoryAuth, {
    gatewayUrl: 'https://gw.example',
    authorizationServiceUrl: 'https://gw.example',
    gatewayHeader: undefined,
    gatewayRejectUnauthorized: true,
    validationTimeoutMs: 10_000,
    staleSweepMs: 10 * 60 * 1000,
    staleAfterMs: 65 * 60 * 1000,
    refreshClientIdHeader: undefined,
  });
  const d = await loadServerConfig({
    BROKER_SERVER_MANDATORY_AUTH_ENABLED: 'yes',
    GATEWAY_HOSTNAME: 'http://gw:1',
    AUTHORIZATION_SERVICE: 'http://auth:2/base/',
    GATEWAY_HEADER_NAME: 'X-Gateway',
    GATEWAY_HEADER_VALUE: 'gateway-secret-value',
    GATEWAY_TLS_OPTION_NAME: 'rejectUnauthorized',
    GATEWAY_TLS_OPTION_VALUE: 'false',
    STALE_CONNECTIONS_CLEANUP_FREQUENCY: '300',
    BROKER_SERVER_AUTH_TIMEOUT_MS: '500',
    SNYK_INTERNAL_AUTH_CLIENT_ID_HEADER: 'X-Internal-Client',
  });
  assert.equal(d.mandatoryAuth?.authorizationServiceUrl, 'http://auth:2/base');
  assert.deepEqual(d.mandatoryAuth?.gatewayHeader, { name: 'x-gateway', value: 'gateway-secret-value' });
  assert.equal(d.mandatoryAuth?.gatewayRejectUnauthorized, false);
  assert.equal(d.mandatoryAuth?.staleSweepMs, 300, 'one variable sets both the interval and the age limit');
  assert.equal(d.mandatoryAuth?.staleAfterMs, 300);
  assert.equal(d.mandatoryAuth?.validationTimeoutMs, 500);
  assert.equal(d.mandatoryAuth?.refreshClientIdHeader, 'x-internal-client');
  assert.ok(d.secrets.includes('gateway-secret-value'), 'the gateway header value is scrubbed from logs');
});

test('mandatory auth: bad settings are named in one ConfigError', async () => {
  const { configProblems } = await import('../support/config-problems.js');
  const problems = async (env: Record<string, string>) => (await configProblems(loadServerConfig, { BROKER_SERVER_MANDATORY_AUTH_ENABLED: 'true', ...env })).join('\n');
  assert.match(await problems({}), /GATEWAY_HOSTNAME is required/);
  assert.match(await problems({ GATEWAY_HOSTNAME: 'gw.example' }), /GATEWAY_HOSTNAME must be a URL/);
  assert.match(await problems({ GATEWAY_HOSTNAME: 'ftp://gw' }), /GATEWAY_HOSTNAME must use http/);
  assert.match(await problems({ GATEWAY_HOSTNAME: 'http://gw', AUTHORIZATION_SERVICE: 'nope' }), /AUTHORIZATION_SERVICE must be a URL/);
  assert.match(await problems({ GATEWAY_HOSTNAME: 'http://gw', GATEWAY_HEADER_NAME: 'bad header' }), /GATEWAY_HEADER_NAME must be an HTTP header name/);
  assert.match(await problems({ GATEWAY_HOSTNAME: 'http://gw', GATEWAY_TLS_OPTION_NAME: 'ciphers' }), /GATEWAY_TLS_OPTION_NAME: only rejectUnauthorized/);
  assert.match(await problems({ GATEWAY_HOSTNAME: 'http://gw', STALE_CONNECTIONS_CLEANUP_FREQUENCY: 'often' }), /STALE_CONNECTIONS_CLEANUP_FREQUENCY must be an integer/);
  assert.match(await problems({ GATEWAY_HOSTNAME: 'http://gw', BROKER_SERVER_AUTH_TIMEOUT_MS: '5' }), /BROKER_SERVER_AUTH_TIMEOUT_MS must be between/);
  assert.match(await problems({ GATEWAY_HOSTNAME: 'http://gw', SNYK_INTERNAL_AUTH_CLIENT_ID_HEADER: 'Authorization' }), /SNYK_INTERNAL_AUTH_CLIENT_ID_HEADER .*credentials/);
  await assert.rejects(loadServerConfig({ BROKER_SERVER_MANDATORY_AUTH_ENABLED: 'maybe' }), (e: unknown) => e instanceof ConfigError && /BROKER_SERVER_MANDATORY_AUTH_ENABLED/.test(e.message));
});
