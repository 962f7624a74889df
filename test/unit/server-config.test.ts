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
  const source = await readFile(new URL('../../../src/config/server.ts', import.meta.url), 'utf8');
  const names = [...source.matchAll(/r\.(?:string|int|port|bool|url|enumOf|required|raw)\('([A-Z_]+)'/g)].map((m) => m[1]!);
  assert.ok(names.length > 15);
  for (const name of new Set(names)) assert.match(SERVER_ENV_HELP, new RegExp(`\\b${name}\\b`), `${name} missing from SERVER_ENV_HELP`);
});
