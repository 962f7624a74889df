import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadDispatcherConfig } from '../../src/config/dispatcher.js';
import { configProblems } from '../support/config-problems.js';
import { DISPATCHER_ENV_HELP } from '../../src/config/dispatcher-help.js';

const problems = (env: Record<string, string>) => configProblems(loadDispatcherConfig, env);

describe('dispatcher config', () => {
  it('has the documented defaults', async () => {
    const c = await loadDispatcherConfig({});
    assert.equal(c.port, 8080);
    assert.equal(c.urlPrefix, '/hidden/broker');
    assert.equal(c.maxClientsPerToken, 4);
    assert.equal(c.redisUrl, undefined);
    assert.equal(c.internalSecret, undefined);
    assert.equal(c.serverTtlMs, 90_000);
    assert.equal(c.clientLeaseMs, 2_000);
    assert.equal(c.connectGraceMs, 30_000);
    assert.equal(c.retryAfterSeconds, 2);
    assert.equal(c.probeIntervalMs, 2_000);
    assert.equal(c.startupGraceMs, 30_000);
    assert.equal(c.logLevel, 'info');
  });

  it('reads every variable', async () => {
    const c = await loadDispatcherConfig({
      PORT: '9000',
      DISPATCHER_URL_PREFIX: '/custom/prefix/',
      MAX_CLIENTS_PER_TOKEN: '2',
      DISPATCHER_REDIS_URL: 'redis://:pw-secret-1@redis:6379/0',
      BROKER_INTERNAL_SECRET: 'internal-secret-1',
      SERVER_TTL_MS: '30000',
      CLIENT_LEASE_MS: '500',
      RETRY_AFTER_SECONDS: '5',
      LOG_LEVEL: 'DEBUG',
    });
    assert.equal(c.port, 9000);
    assert.equal(c.urlPrefix, '/custom/prefix');
    assert.equal(c.maxClientsPerToken, 2);
    assert.equal(c.redisUrl, 'redis://:pw-secret-1@redis:6379/0');
    assert.equal(c.serverTtlMs, 30_000);
    assert.equal(c.clientLeaseMs, 500);
    assert.equal(c.retryAfterSeconds, 5);
    assert.equal(c.logLevel, 'debug');
    assert.deepEqual(c.secrets.sort(), ['internal-secret-1', 'pw-secret-1']);
  });

  it('names every bad variable at once', async () => {
    const p = await problems({ PORT: 'eighty', MAX_CLIENTS_PER_TOKEN: '0', DISPATCHER_REDIS_URL: 'http://redis:6379', RETRY_AFTER_SECONDS: 'x', DISPATCHER_URL_PREFIX: 'no-slash', LOG_LEVEL: 'loud', NODE_EXTRA_CA_CERTS: '/nonexistent/ca.pem', HTTPS_PROXY: 'not a url' });
    for (const name of ['PORT', 'MAX_CLIENTS_PER_TOKEN', 'DISPATCHER_REDIS_URL', 'RETRY_AFTER_SECONDS', 'DISPATCHER_URL_PREFIX', 'LOG_LEVEL', 'NODE_EXTRA_CA_CERTS', 'HTTPS_PROXY']) {
      assert.ok(p.some((x) => x.startsWith(name)), `${name} named in ${JSON.stringify(p)}`);
    }
  });

  it('the help text lists every variable it reads', () => {
    for (const name of ['PORT', 'DISPATCHER_URL_PREFIX', 'MAX_CLIENTS_PER_TOKEN', 'DISPATCHER_REDIS_URL', 'BROKER_INTERNAL_SECRET', 'SERVER_TTL_MS', 'CLIENT_LEASE_MS', 'CLIENT_CONNECT_GRACE_MS', 'RETRY_AFTER_SECONDS', 'SERVER_PROBE_INTERVAL_MS', 'DISPATCHER_STARTUP_GRACE_MS', 'LOG_LEVEL']) {
      assert.match(DISPATCHER_ENV_HELP, new RegExp(`\\b${name}\\b`));
    }
  });
});
