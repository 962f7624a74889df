// Universal Broker settings from the environment (src/config/universal.ts and readUniversalSettings):
// when the mode is on, which variables are required, SKIP_REMOTE_CONFIG's local file, Snyk's
// API_BASE_URL chain (universal-broker.md §1) and the problems collected for exit 2.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { EnvReader, type Env } from '../../src/config/env.js';
import { ConfigError } from '../../src/config/errors.js';
import { apiBaseUrlFrom, DEFAULT_API_VERSION, readUniversalConfig, universalEnabled } from '../../src/config/universal.js';
import { readUniversalSettings } from '../../src/client/universal/universal-client.js';
import { DEFAULT_WIRE_VERSION } from '../../src/config/client.js';

const CREDS = { DEPLOYMENT_ID: '12345678-1234-1234-1234-123456789012', CLIENT_ID: 'client-id-1', CLIENT_SECRET: 'client-secret-value-xyz' };
const CWD = '/srv/broker';

function problemsOf(env: Env): string[] {
  try {
    readUniversalSettings(env, CWD);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.problems;
  }
  return [];
}

function apiBase(env: Env): string {
  return apiBaseUrlFrom(new EnvReader(env));
}

describe('universalEnabled', () => {
  const cases: Array<[string | undefined, boolean]> = [
    [undefined, false],
    ['', false],
    ['   ', false],
    ['true', true],
    ['TRUE', true],
    ['yes', true],
    ['1', true],
    ['on', true],
    ['anything at all', true],
    // Snyk's client would turn these on too (a truthy string); ours keeps the classic client.
    ['false', false],
    ['False', false],
    [' false ', false],
    ['no', false],
    ['NO', false],
    ['0', false],
  ];
  for (const [value, want] of cases) {
    it(`${JSON.stringify(value)} → ${want}`, () => {
      assert.equal(universalEnabled(value === undefined ? {} : { UNIVERSAL_BROKER_ENABLED: value }), want);
    });
  }
});

describe('readUniversalConfig / readUniversalSettings', () => {
  it('reads the credentials, the defaults and no connections file', () => {
    const s = readUniversalSettings({ ...CREDS }, CWD);
    assert.equal(s.universal.deploymentId, CREDS.DEPLOYMENT_ID);
    assert.deepEqual(s.universal.oauth, { clientId: CREDS.CLIENT_ID, clientSecret: CREDS.CLIENT_SECRET });
    assert.equal(s.universal.apiVersion, DEFAULT_API_VERSION);
    assert.equal(s.universal.apiVersion, '2024-02-08~experimental');
    assert.equal(s.universal.apiBaseUrl, 'https://api.snyk.io');
    assert.equal(s.universal.connectionsFile, undefined);
    assert.equal(s.universal.syncIntervalMs, 60_000);
    assert.equal(s.universal.authRenewalMs, 600_000);
    assert.equal(s.universal.renewalFailuresBeforeRestart, 3);
    assert.equal(s.port, 7341);
    assert.equal(s.healthcheckPath, '/healthcheck');
    assert.equal(s.systemcheckPath, '/systemcheck');
    assert.equal(s.wireVersion, DEFAULT_WIRE_VERSION);
    assert.equal(s.cwd, CWD);
    assert.match(s.clientId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.notEqual(readUniversalSettings({ ...CREDS }, CWD).clientId, s.clientId, 'a new uuid per process (per read)');
  });

  it('takes BROKER_CLIENT_ID, API_VERSION, PORT, the check paths, the intervals and BROKER_VERSION from the environment', () => {
    const s = readUniversalSettings(
      { ...CREDS, BROKER_CLIENT_ID: 'my-client', API_VERSION: '2025-01-01', PORT: '9123', BROKER_HEALTHCHECK_PATH: '/hc', BROKER_SYSTEMCHECK_PATH: '/sc', BROKER_CLIENT_SYNC_INTERVAL_MS: '5000', AUTH_EXPIRATION_OVERRIDE: '120000', BROKER_VERSION: '9.9.9' },
      CWD,
    );
    assert.equal(s.clientId, 'my-client');
    assert.equal(s.universal.apiVersion, '2025-01-01');
    assert.equal(s.port, 9123);
    assert.equal(s.healthcheckPath, '/hc');
    assert.equal(s.systemcheckPath, '/sc');
    assert.equal(s.universal.syncIntervalMs, 5000);
    assert.equal(s.universal.authRenewalMs, 120_000);
    assert.equal(s.wireVersion, '9.9.9');
  });

  for (const name of ['DEPLOYMENT_ID', 'CLIENT_ID', 'CLIENT_SECRET'] as const) {
    it(`${name} missing (or blank) is a problem that names it`, () => {
      for (const value of [undefined, '', '  ']) {
        const env: Env = { ...CREDS, [name]: value };
        const problems = problemsOf(env);
        assert.equal(problems.length, 1, `${name}=${JSON.stringify(value)}: ${problems.join(' | ')}`);
        assert.match(problems[0]!, new RegExp(`^${name} is required`));
        assert.match(problems[0]!, /SKIP_REMOTE_CONFIG/, 'the hint names the local alternative');
      }
    });
  }

  it('every missing credential is listed in one ConfigError, with other problems, and the secret is never in it', () => {
    const problems = problemsOf({ CLIENT_SECRET: CREDS.CLIENT_SECRET, PORT: 'eighty', LOG_LEVEL: 'chatty', API_BASE_URL: 'not a url' });
    const text = problems.join('\n');
    assert.match(text, /DEPLOYMENT_ID is required/);
    assert.match(text, /CLIENT_ID is required/);
    assert.doesNotMatch(text, /CLIENT_SECRET is required/);
    assert.match(text, /PORT must be an integer/);
    assert.match(text, /LOG_LEVEL must be one of/);
    assert.match(text, /API_BASE_URL must be a URL/);
    assert.ok(!text.includes(CREDS.CLIENT_SECRET));
    assert.throws(() => readUniversalSettings({}, CWD), (err: unknown) => err instanceof ConfigError && /invalid configuration/.test(err.message));
  });

  it('SKIP_REMOTE_CONFIG: no credentials needed, connections from cwd/config.universal.json', () => {
    const s = readUniversalSettings({ SKIP_REMOTE_CONFIG: 'true' }, CWD);
    assert.equal(s.universal.oauth, undefined);
    assert.equal(s.universal.deploymentId, undefined);
    assert.equal(s.universal.connectionsFile, join(CWD, 'config.universal.json'));
  });

  it('SKIP_REMOTE_CONFIG with SERVICE_ENV names config.<SERVICE_ENV>.json; credentials given are not used for OAuth', () => {
    const s = readUniversalSettings({ ...CREDS, SKIP_REMOTE_CONFIG: 'yes', SERVICE_ENV: 'universaltest' }, CWD);
    assert.equal(s.universal.connectionsFile, join(CWD, 'config.universaltest.json'));
    assert.equal(s.universal.oauth, undefined);
    assert.equal(s.universal.deploymentId, CREDS.DEPLOYMENT_ID, 'still reported in logs and identify');
    assert.equal(readUniversalSettings({ SKIP_REMOTE_CONFIG: '1', SERVICE_ENV: '' }, CWD).universal.connectionsFile, join(CWD, 'config.universal.json'));
  });

  it('SKIP_REMOTE_CONFIG=false/no/0 is off: the credentials are required again', () => {
    for (const value of ['false', 'no', '0', '']) {
      const problems = problemsOf({ SKIP_REMOTE_CONFIG: value });
      assert.equal(problems.length, 3, `SKIP_REMOTE_CONFIG=${value}: ${problems.join(' | ')}`);
    }
  });

  it('the cwd defaults to the process working directory', () => {
    const r = new EnvReader({ SKIP_REMOTE_CONFIG: 'true' });
    assert.equal(readUniversalConfig(r).connectionsFile, join(process.cwd(), 'config.universal.json'));
    assert.deepEqual(r.problems, []);
  });

  it('DEPLOYMENT_ID must be a path-safe id', () => {
    for (const bad of ['a/b', '../x', 'with space', 'a?b=c']) {
      const problems = problemsOf({ ...CREDS, DEPLOYMENT_ID: bad });
      assert.equal(problems.length, 1, bad);
      assert.match(problems[0]!, /^DEPLOYMENT_ID must be the deployment's id/);
    }
    assert.deepEqual(problemsOf({ ...CREDS, DEPLOYMENT_ID: 'dep_1.2~x-Y' }), []);
  });

  it('bad integers are problems naming the variable', () => {
    const text = problemsOf({ ...CREDS, BROKER_CLIENT_SYNC_INTERVAL_MS: 'soon', AUTH_EXPIRATION_OVERRIDE: '50', PORT: '70000' }).join('\n');
    assert.match(text, /BROKER_CLIENT_SYNC_INTERVAL_MS must be an integer, got "soon"/);
    assert.match(text, /AUTH_EXPIRATION_OVERRIDE must be between 100 and/);
    assert.match(text, /PORT must be between 0 and 65535/);
    assert.match(problemsOf({ ...CREDS, AUTH_EXPIRATION_OVERRIDE: '10m' }).join('\n'), /AUTH_EXPIRATION_OVERRIDE must be an integer/);
    assert.match(problemsOf({ ...CREDS, BROKER_CLIENT_SYNC_INTERVAL_MS: '-1' }).join('\n'), /BROKER_CLIENT_SYNC_INTERVAL_MS must be between/);
  });
});

describe('API_BASE_URL chain (universal-broker.md §1)', () => {
  it('API_BASE_URL first, trailing slashes dropped', () => {
    assert.equal(apiBase({ API_BASE_URL: 'https://api.eu.snyk.io/', BROKER_DISPATCHER_BASE_URL: 'https://api.au.snyk.io', BROKER_SERVER_URL: 'https://broker.us.snyk.io' }), 'https://api.eu.snyk.io');
    assert.equal(apiBase({ API_BASE_URL: 'http://127.0.0.1:1234//' }), 'http://127.0.0.1:1234');
  });

  it('then BROKER_DISPATCHER_BASE_URL (a blank API_BASE_URL does not count)', () => {
    assert.equal(apiBase({ API_BASE_URL: '  ', BROKER_DISPATCHER_BASE_URL: 'https://api.au.snyk.io/', BROKER_SERVER_URL: 'https://broker.us.snyk.io' }), 'https://api.au.snyk.io');
  });

  it("then BROKER_SERVER_URL with //broker. or //broker2. made //api.", () => {
    assert.equal(apiBase({ BROKER_SERVER_URL: 'https://broker.eu.snyk.io' }), 'https://api.eu.snyk.io');
    assert.equal(apiBase({ BROKER_SERVER_URL: 'https://broker2.snyk.io' }), 'https://api.snyk.io');
    assert.equal(apiBase({ BROKER_SERVER_URL: 'https://broker.snyk.io/' }), 'https://api.snyk.io');
    assert.equal(apiBase({ BROKER_SERVER_URL: 'http://broker.corp.example:8080' }), 'http://api.corp.example:8080');
  });

  it('a server URL without broker. is the API base as it is (Snyk: its `?.replace()` chain returns it unchanged); no server URL: https://api.snyk.io', () => {
    assert.equal(apiBase({}), 'https://api.snyk.io');
    assert.equal(apiBase({ BROKER_SERVER_URL: 'http://127.0.0.1:9000' }), 'http://127.0.0.1:9000');
    assert.equal(apiBase({ BROKER_SERVER_URL: 'https://mybroker.example/' }), 'https://mybroker.example');
  });

  it('settings carry the chain result', () => {
    assert.equal(readUniversalSettings({ ...CREDS, BROKER_SERVER_URL: 'https://broker.eu.snyk.io' }, CWD).universal.apiBaseUrl, 'https://api.eu.snyk.io');
    assert.equal(readUniversalSettings({ ...CREDS, BROKER_DISPATCHER_BASE_URL: 'https://api.au.snyk.io' }, CWD).universal.apiBaseUrl, 'https://api.au.snyk.io');
  });

  it('a bad URL is a problem naming the variable it came from', () => {
    assert.match(problemsOf({ ...CREDS, API_BASE_URL: 'api.snyk.io' }).join('\n'), /^API_BASE_URL must be a URL/m);
    assert.match(problemsOf({ ...CREDS, API_BASE_URL: 'ftp://api.snyk.io' }).join('\n'), /^API_BASE_URL must use http: or https:/m);
    assert.match(problemsOf({ ...CREDS, BROKER_DISPATCHER_BASE_URL: 'nope' }).join('\n'), /^BROKER_DISPATCHER_BASE_URL must be a URL/m);
    const withCreds = problemsOf({ ...CREDS, API_BASE_URL: 'https//user:hunter2-pw@api' }).join('\n');
    assert.match(withCreds, /API_BASE_URL must be a URL/);
    assert.ok(!withCreds.includes('hunter2-pw'), 'userinfo is redacted from the message');
  });

  it('a BROKER_SERVER_URL the chain cannot turn into a URL is a problem, not a crash', () => {
    // `//broker.snyk.io` matches the rewrite but is no absolute URL.
    const problems = problemsOf({ ...CREDS, BROKER_SERVER_URL: '//broker.snyk.io' });
    assert.equal(problems.length, 1, problems.join(' | '));
    assert.match(problems[0]!, /^BROKER_SERVER_URL must be a URL/);
    assert.match(problemsOf({ ...CREDS, BROKER_SERVER_URL: 'ftp://broker.snyk.io' }).join('\n'), /^BROKER_SERVER_URL must use http: or https:/m);
  });
});
