// What each connection of the deployment becomes (src/client/universal/connection-env.ts,
// planConnection): ${ENV} references, disabled and unused connections, the filter type, the
// classic environment's precedence, and then that environment through the classic config reader
// (loadClientConfig) for each type we serve: it must load, with rules that go to the connection's hosts.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadClientConfig, type ClientConfig } from '../../src/config/client.js';
import type { Env } from '../../src/config/env.js';
import type { UniversalConfig } from '../../src/config/universal.js';
import { UNIVERSAL_TYPE_NAMES, universalType } from '../../src/config/universal-types.js';
import { isRunnable, planConnection, type ConnectionPlan, type DisabledPlan, type RunnablePlan } from '../../src/client/universal/connection-env.js';
import type { DeploymentConnection } from '../../src/client/universal/connections-source.js';
import { freePort } from '../support/ports.js';

const UB: UniversalConfig = { apiBaseUrl: 'https://api.eu.snyk.io', apiVersion: '2024-02-08~experimental', syncIntervalMs: 60_000, authRenewalMs: 600_000, renewalFailuresBeforeRestart: 3, deploymentId: 'dep-1', oauth: { clientId: 'cid', clientSecret: 'client-secret-never-in-env' } };
const CLIENT_ID = 'process-client-id';

function conn(type: string, values: Record<string, string>, over: Partial<DeploymentConnection> = {}): DeploymentConnection {
  return { name: `my ${type}`, id: `id-${type}`, type, identifier: 'tok-identifier-1', values, contexts: {}, ...over };
}

function runnable(plan: ConnectionPlan): RunnablePlan {
  assert.ok(isRunnable(plan), `expected a runnable plan, got: ${'disabled' in plan ? plan.disabled : ''}`);
  return plan;
}

function disabled(plan: ConnectionPlan): DisabledPlan {
  assert.ok(!isRunnable(plan), 'expected a disabled plan');
  return plan;
}

describe('planConnection: references, disabled and unused connections', () => {
  it('resolves ${ENV} references in values and the identifier from the process environment', () => {
    const plan = runnable(
      planConnection(conn('gitlab', { GITLAB_TOKEN: '${GL_TOKEN}', GITLAB: 'gitlab.${DOMAIN}', NOTE: '${A}:${B} and $NOT_A_REFERENCE' }, { identifier: '${BROKER_TOKEN_1}' }), { GL_TOKEN: 'glpat-123', DOMAIN: 'corp.example', A: 'x', B: 'y', BROKER_TOKEN_1: 'tok-from-env' }, UB, CLIENT_ID),
    );
    assert.equal(plan.identifier, 'tok-from-env');
    assert.equal(plan.env.BROKER_TOKEN, 'tok-from-env');
    assert.equal(plan.env.GITLAB_TOKEN, 'glpat-123');
    assert.equal(plan.env.GITLAB, 'gitlab.corp.example');
    assert.equal(plan.env.NOTE, 'x:y and $NOT_A_REFERENCE', 'a bare $VAR is left for the classic reader');
    assert.equal(plan.name, 'my gitlab');
    assert.equal(plan.type, 'gitlab');
    assert.equal(plan.filterType, 'gitlab');
  });

  it('a missing reference disables the connection, naming every missing variable (values and identifier)', () => {
    const plan = disabled(
      planConnection(conn('github', { GITHUB_TOKEN: '${SET_ONE}', GITHUB_API: '${MISSING_A}', OTHER: '${MISSING_B}-${EMPTY}' }, { identifier: '${MISSING_TOKEN}' }), { SET_ONE: 'v', EMPTY: '' }, UB, CLIENT_ID),
    );
    // Snyk's validator stops at the first reference that is set; ours names them all.
    for (const name of ['MISSING_A', 'MISSING_B', 'EMPTY', 'MISSING_TOKEN']) assert.ok(plan.disabled.includes(name), `${name} in ${plan.disabled}`);
    assert.ok(!plan.disabled.includes('SET_ONE'));
    assert.match(plan.disabled, /missing environment variable value/);
    assert.match(plan.disabled, /restart/);
    assert.equal(plan.unused, undefined);
    assert.ok(!('env' in plan), 'no environment for a disabled connection');
  });

  it('a missing reference wins over "unused" (Snyk checks isDisabled first)', () => {
    const plan = disabled(planConnection(conn('github', { GITHUB_TOKEN: '${NOPE}' }, { identifier: null }), {}, UB, CLIENT_ID));
    assert.match(plan.disabled, /NOPE/);
    assert.equal(plan.unused, undefined);
  });

  it('identifier null: unused, not a problem', () => {
    const plan = disabled(planConnection(conn('github', { GITHUB_TOKEN: 'ghp_x' }, { identifier: null }), {}, UB, CLIENT_ID));
    assert.equal(plan.unused, true);
    assert.match(plan.disabled, /not in use/);
  });

  it('an unknown type is disabled naming it', () => {
    const plan = disabled(planConnection(conn('subversion', { SVN: 'x' }), {}, UB, CLIENT_ID));
    assert.match(plan.disabled, /"subversion"/);
    assert.match(plan.disabled, /not one Snyk's Universal Broker supports/);
  });

  it('a type we have no rules for (container registries, workload) is disabled with a clear reason', () => {
    for (const type of ['docker-hub', 'ecr', 'github-cr', 'google-artifact-cr', 'workload']) {
      const plan = disabled(planConnection(conn(type, { CR_AGENT_URL: 'https://cra.example', WORKLOAD_INTERNAL_URI: 'x' }), {}, UB, CLIENT_ID));
      assert.match(plan.disabled, new RegExp(`no accept rules for connection type ${type}`), type);
      assert.equal(plan.unused, undefined);
    }
  });

  it('every Snyk type is either runnable with a preset or disabled with a reason (none throws)', () => {
    for (const type of UNIVERSAL_TYPE_NAMES) {
      const plan = planConnection(conn(type, {}), {}, UB, CLIENT_ID);
      if (universalType(type)!.preset) assert.equal(runnable(plan).env.BROKER_SCM_TYPE, universalType(type)!.preset, type);
      else assert.ok(!isRunnable(plan), type);
    }
  });

  it('jira with JIRA_PAT is served as jira-bearer-auth; bitbucket-server with BITBUCKET_PAT as bitbucket-server-bearer-auth', () => {
    const jira = runnable(planConnection(conn('jira', { JIRA_PAT: '${PAT}', JIRA_HOSTNAME: 'jira.corp.example' }), { PAT: 'pat-value-1' }, UB, CLIENT_ID));
    assert.equal(jira.type, 'jira');
    assert.equal(jira.filterType, 'jira-bearer-auth');
    assert.equal(jira.env.BROKER_SCM_TYPE, 'jira-bearer-auth');
    const basic = runnable(planConnection(conn('jira', { JIRA_USERNAME: 'u', JIRA_PASSWORD: 'p', JIRA_HOSTNAME: 'jira.corp.example' }), {}, UB, CLIENT_ID));
    assert.equal(basic.filterType, 'jira');
    assert.equal(basic.env.BROKER_SCM_TYPE, 'jira');
    const bb = runnable(planConnection(conn('bitbucket-server', { BITBUCKET_PAT: 'bb-pat', BITBUCKET: 'bb.corp.example' }), {}, UB, CLIENT_ID));
    assert.equal(bb.filterType, 'bitbucket-server-bearer-auth');
    assert.equal(bb.env.BROKER_SCM_TYPE, 'bitbucket-server-bearer-auth');
  });
});

describe('planConnection: the environment a connection gets', () => {
  it('type defaults, then the process, then the connection; the forced values last', () => {
    const processEnv: Env = {
      BROKER_SERVER_URL: 'https://broker.eu.snyk.io',
      LOG_LEVEL: 'debug',
      HTTPS_PROXY: 'http://proxy.corp:3128',
      ACCEPT_IAC: 'false',
      GITHUB_API: 'process.example', // a type default of github's: the process does not override it
      BROKER_HEALTHCHECK_PATH: '/hc',
    };
    const plan = runnable(planConnection(conn('github', { GITHUB_TOKEN: 'ghp_1', LOG_LEVEL: 'warn' }), processEnv, UB, CLIENT_ID));
    const env = plan.env;
    assert.equal(env.BROKER_SERVER_URL, 'https://broker.eu.snyk.io', 'the process overrides a common default');
    assert.equal(env.BROKER_HEALTHCHECK_PATH, '/hc');
    assert.equal(env.GITHUB_API, 'api.github.com', "the type's own default stays");
    assert.equal(env.GITHUB, 'github.com');
    assert.equal(env.GIT_PASSWORD, '$GITHUB_TOKEN', 'defaults stay unexpanded for the classic reader');
    assert.equal(env.HTTPS_PROXY, 'http://proxy.corp:3128', 'other process variables are inherited');
    assert.equal(env.LOG_LEVEL, 'warn', 'the connection overrides the process');
    assert.equal(env.ACCEPT_IAC, 'false', "the process overrides Snyk's ACCEPT_* default");
    assert.equal(env.ACCEPT_CODE, 'true');
    assert.equal(env.ACCEPT_LARGE_MANIFESTS, 'true');
    // Switches that add no rules here are left unset (no warning about a switch nobody set).
    assert.equal(env.ACCEPT_CUSTOM_PR_TEMPLATES, undefined);
    assert.equal(env.ACCEPT_ESSENTIALS, undefined);
    assert.equal(env.BROKER_TOKEN, 'tok-identifier-1');
    assert.equal(env.BROKER_SCM_TYPE, 'github-com');
    assert.equal(env.BROKER_CLIENT_ID, CLIENT_ID);
    assert.equal(env.BROKER_DISPATCHER_BASE_URL, 'https://api.eu.snyk.io');
    assert.equal(env.DISPATCHER_URL_PREFIX, '/hidden/brokers');
  });

  it("Snyk's ACCEPT_* defaults only where they add rules: none for jira, no large manifests for gitlab", () => {
    const jira = runnable(planConnection(conn('jira', { JIRA_USERNAME: 'u', JIRA_PASSWORD: 'p', JIRA_HOSTNAME: 'jira.corp' }), {}, UB, CLIENT_ID));
    assert.deepEqual(Object.keys(jira.env).filter((k) => k.startsWith('ACCEPT_')), []);
    const gl = runnable(planConnection(conn('gitlab', { GITLAB_TOKEN: 't', GITLAB: 'gitlab.corp' }), {}, UB, CLIENT_ID));
    assert.equal(gl.env.ACCEPT_CODE, 'true');
    assert.equal(gl.env.ACCEPT_LARGE_MANIFESTS, undefined);
  });

  it('with nothing in the process, the common defaults apply', () => {
    const env = runnable(planConnection(conn('gitlab', { GITLAB_TOKEN: 't', GITLAB: 'gl.example' }), {}, UB, CLIENT_ID)).env;
    assert.equal(env.BROKER_SERVER_URL, 'https://broker.snyk.io');
    assert.equal(env.BROKER_HEALTHCHECK_PATH, '/healthcheck');
    assert.equal(env.REMOVE_X_FORWARDED_HEADERS, 'true');
  });

  it("a connection's values override the type defaults (github_api from Snyk)", () => {
    const env = runnable(planConnection(conn('github', { GITHUB_TOKEN: 't', GITHUB_API: 'ghe.corp/api/v3' }), {}, UB, CLIENT_ID)).env;
    assert.equal(env.GITHUB_API, 'ghe.corp/api/v3');
  });

  it('ACCEPT, BROKER_TOKEN, BROKER_SCM_TYPE and the Universal credentials of the process do not leak into a connection', () => {
    const processEnv: Env = {
      ACCEPT: '/etc/broker/classic-accept.json',
      BROKER_TOKEN: 'classic-leftover-token',
      BROKER_SCM_TYPE: 'nexus',
      CLIENT_ID: 'cid',
      CLIENT_SECRET: 'client-secret-never-in-env',
      DEPLOYMENT_ID: 'dep-1',
      UNIVERSAL_BROKER_ENABLED: 'true',
      UNIVERSAL_BROKER_GA: 'true',
      SKIP_REMOTE_CONFIG: 'false',
      SERVICE_ENV: 'universal',
      API_VERSION: 'v',
    };
    const env = runnable(planConnection(conn('gitlab', { GITLAB_TOKEN: 't', GITLAB: 'gl.example' }), processEnv, UB, CLIENT_ID)).env;
    assert.equal(env.ACCEPT, undefined);
    assert.equal(env.BROKER_TOKEN, 'tok-identifier-1');
    assert.equal(env.BROKER_SCM_TYPE, 'gitlab');
    for (const k of ['CLIENT_ID', 'CLIENT_SECRET', 'DEPLOYMENT_ID', 'UNIVERSAL_BROKER_ENABLED', 'UNIVERSAL_BROKER_GA', 'SKIP_REMOTE_CONFIG', 'SERVICE_ENV', 'API_VERSION']) assert.equal(env[k], undefined, k);
    assert.ok(!Object.values(env).includes('client-secret-never-in-env'));
    assert.ok(!Object.values(env).includes('classic-leftover-token'));
  });

  it('BROKER_CLIENT_ID of the process is replaced by the one process-wide id; the prefix can be overridden', () => {
    const env = runnable(planConnection(conn('gitlab', { GITLAB_TOKEN: 't', GITLAB: 'g' }), { BROKER_CLIENT_ID: 'other', SNYK_DISPATCHER_URL_PREFIX: '/hidden/broker' }, UB, CLIENT_ID)).env;
    assert.equal(env.BROKER_CLIENT_ID, CLIENT_ID);
    assert.equal(env.DISPATCHER_URL_PREFIX, '/hidden/broker');
    assert.equal(runnable(planConnection(conn('gitlab', { GITLAB_TOKEN: 't', GITLAB: 'g' }), { DISPATCHER_URL_PREFIX: '/x', SNYK_DISPATCHER_URL_PREFIX: '/y' }, UB, CLIENT_ID)).env.DISPATCHER_URL_PREFIX, '/x');
  });

  it("BROKER_CLIENT_URL of the process applies to types that require it; the connection's own wins", () => {
    const processEnv: Env = { BROKER_CLIENT_URL: 'https://broker-client.corp:8000' };
    for (const [type, values] of [
      ['github', { GITHUB_TOKEN: 't' }],
      ['gitlab', { GITLAB_TOKEN: 't', GITLAB: 'g' }],
      ['bitbucket-server', { BITBUCKET_USERNAME: 'u', BITBUCKET_PASSWORD: 'p', BITBUCKET: 'b' }],
      ['azure-repos', { AZURE_REPOS_TOKEN: 't', AZURE_REPOS_ORG: 'o' }],
    ] as const) {
      assert.equal(runnable(planConnection(conn(type, values), processEnv, UB, CLIENT_ID)).env.BROKER_CLIENT_URL, 'https://broker-client.corp:8000', type);
      assert.equal(runnable(planConnection(conn(type, { ...values, BROKER_CLIENT_URL: 'https://own.corp' }), processEnv, UB, CLIENT_ID)).env.BROKER_CLIENT_URL, 'https://own.corp', type);
    }
  });

  it('the plan does not change the process environment or the connection', () => {
    const processEnv: Env = { T: 'v' };
    const c = conn('gitlab', { GITLAB_TOKEN: '${T}', GITLAB: 'g' });
    const before = JSON.stringify([processEnv, c]);
    planConnection(c, processEnv, UB, CLIENT_ID);
    planConnection(conn('gitlab', { GITLAB_TOKEN: '${MISSING}' }), processEnv, UB, CLIENT_ID);
    assert.equal(JSON.stringify([processEnv, c]), before);
  });
});

/** Every host the connection's private rules can send to (origins resolved with its variables). */
function ruleHosts(config: ClientConfig): Set<string> {
  const hosts = new Set<string>();
  for (const rule of config.privateRules.rules) {
    // GIT_CLIENT_URL: Snyk's code agent, which a connection does not configure.
    if (rule.origin === undefined || rule.origin.includes('GIT_CLIENT_URL')) continue;
    const r = config.privateRules.resolve(rule, '/');
    assert.ok(r.allowed);
    assert.equal(r.unsetOriginVariables, undefined, `rule ${rule.method ?? 'get'} ${rule.path}: unset ${r.unsetOriginVariables?.join(', ')}`);
    assert.ok(r.targetUrl, `rule ${rule.path} has no target`);
    hosts.add(new URL(r.targetUrl).host);
  }
  return hosts;
}

interface TypeCase {
  type: string;
  /** As Snyk's API sends them (upper-cased already), references to the process env allowed. */
  values: Record<string, string>;
  processEnv?: Env;
  scmType: string;
  /** Every host the private rules may reach. */
  hosts: string[];
  /** The /systemcheck URL. */
  validationUrl?: string;
  /** The Authorization header /systemcheck sends first. */
  validationAuth?: string;
  /** Values that must be among config.secrets (scrubbed from logs). */
  secrets: string[];
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

const TYPE_CASES: TypeCase[] = [
  {
    type: 'github',
    values: { GITHUB_TOKEN: '${GH_TOKEN}', BROKER_CLIENT_URL: 'https://broker-client.corp:8000' },
    processEnv: { GH_TOKEN: 'ghp_secret_github_123' },
    scmType: 'github-com',
    hosts: ['api.github.com', 'github.com', 'raw.githubusercontent.com'],
    validationUrl: 'https://api.github.com/user',
    validationAuth: 'token ghp_secret_github_123',
    secrets: ['ghp_secret_github_123'],
  },
  {
    type: 'gitlab',
    values: { GITLAB_TOKEN: '${GL_TOKEN}', GITLAB: 'gitlab.corp.example', BROKER_CLIENT_URL: 'https://broker-client.corp:8000' },
    processEnv: { GL_TOKEN: 'glpat-secret-gitlab-123' },
    scmType: 'gitlab',
    hosts: ['gitlab.corp.example'],
    validationUrl: 'https://gitlab.corp.example/api/v3/user?private_token=glpat-secret-gitlab-123',
    secrets: ['glpat-secret-gitlab-123'],
  },
  {
    type: 'jira',
    values: { JIRA_PAT: '${JIRA_PAT}', JIRA_HOSTNAME: 'jira.corp.example' },
    processEnv: { JIRA_PAT: 'jira-pat-secret-123' },
    scmType: 'jira-bearer-auth',
    hosts: ['jira.corp.example'],
    validationUrl: 'https://jira.corp.example/rest/api/2/myself',
    validationAuth: 'Bearer jira-pat-secret-123',
    secrets: ['jira-pat-secret-123'],
  },
  {
    type: 'jira',
    values: { JIRA_USERNAME: 'jira-user', JIRA_PASSWORD: '${JIRA_PASSWORD}', JIRA_HOSTNAME: 'jira.corp.example' },
    processEnv: { JIRA_PASSWORD: 'jira-password-secret-123' },
    scmType: 'jira',
    hosts: ['jira.corp.example'],
    validationUrl: 'https://jira.corp.example/rest/api/2/myself',
    validationAuth: `Basic ${b64('jira-user:jira-password-secret-123')}`,
    secrets: ['jira-password-secret-123'],
  },
  {
    type: 'bitbucket-server',
    values: { BITBUCKET_USERNAME: 'bb-user', BITBUCKET_PASSWORD: '${BB_PASSWORD}', BITBUCKET: 'bitbucket.corp.example', BROKER_CLIENT_URL: 'https://broker-client.corp:8000' },
    processEnv: { BB_PASSWORD: 'bb-password-secret-123' },
    scmType: 'bitbucket-server',
    hosts: ['bitbucket.corp.example'],
    validationUrl: 'https://bitbucket.corp.example/rest/api/1.0/projects',
    validationAuth: `Basic ${b64('bb-user:bb-password-secret-123')}`,
    secrets: ['bb-password-secret-123'],
  },
  {
    type: 'bitbucket-server',
    values: { BITBUCKET_PAT: '${BB_PAT}', BITBUCKET: 'bitbucket.corp.example', BROKER_CLIENT_URL: 'https://broker-client.corp:8000' },
    processEnv: { BB_PAT: 'bb-pat-secret-123' },
    scmType: 'bitbucket-server-bearer-auth',
    hosts: ['bitbucket.corp.example'],
    validationUrl: 'https://bitbucket.corp.example/rest/api/1.0/projects',
    validationAuth: 'Bearer bb-pat-secret-123',
    secrets: ['bb-pat-secret-123'],
  },
  {
    type: 'azure-repos',
    values: { AZURE_REPOS_TOKEN: '${AZ_TOKEN}', AZURE_REPOS_ORG: 'corp-org', BROKER_CLIENT_URL: 'https://broker-client.corp:8000' },
    processEnv: { AZ_TOKEN: 'azure-pat-secret-123' },
    scmType: 'azure-repos',
    hosts: ['dev.azure.com'],
    validationUrl: 'https://dev.azure.com/corp-org/_apis/git/repositories',
    validationAuth: `Basic ${b64('PAT:azure-pat-secret-123')}`,
    secrets: ['azure-pat-secret-123'],
  },
  {
    type: 'artifactory',
    values: { ARTIFACTORY_URL: 'art-user:${ART_PASSWORD}@artifactory.corp.example/artifactory' },
    processEnv: { ART_PASSWORD: 'art-password-secret-123' },
    scmType: 'artifactory',
    hosts: ['artifactory.corp.example'],
    validationUrl: 'https://art-user:art-password-secret-123@artifactory.corp.example/artifactory/api/system/ping',
    secrets: ['art-password-secret-123'],
  },
  {
    type: 'nexus',
    values: { BASE_NEXUS_URL: 'https://nexus-user:${NEXUS_PASSWORD}@nexus.corp.example' },
    processEnv: { NEXUS_PASSWORD: 'nexus-password-secret-123' },
    scmType: 'nexus',
    hosts: ['nexus.corp.example'],
    validationUrl: 'https://nexus-user:nexus-password-secret-123@nexus.corp.example/service/rest/v1/status/check',
    secrets: ['nexus-password-secret-123'],
  },
  {
    type: 'apprisk',
    values: { CHECKMARX: 'checkmarx.corp.example', CHECKMARX_USERNAME: 'cx-user', CHECKMARX_PASSWORD: '${CX_PASSWORD}', SONARQUBE_HOST_URL: 'sonar.corp.example', SONARQUBE_API_TOKEN: '${SONAR_TOKEN}' },
    processEnv: { CX_PASSWORD: 'cx-password-secret-123', SONAR_TOKEN: 'sonar-token-secret-123' },
    scmType: 'apprisk',
    hosts: ['checkmarx.corp.example', 'sonar.corp.example'],
    secrets: ['cx-password-secret-123', 'sonar-token-secret-123'],
  },
];

describe('a planned connection through the classic config reader (loadClientConfig)', () => {
  let cwd: string;
  let serverUrl: string;
  before(async () => {
    cwd = await mkdtemp(join(tmpdir(), 'ub-plan-'));
    // A closed local port: nothing here may go to Snyk.
    serverUrl = `http://127.0.0.1:${await freePort()}`;
  });

  for (const c of TYPE_CASES) {
    it(`${c.type} (${c.scmType}) loads, with rules for the connection's hosts`, async () => {
      const plan = runnable(planConnection(conn(c.type, c.values, { identifier: 'b2f1c0de-1234-4321-8888-0123456789ab' }), { BROKER_SERVER_URL: serverUrl, ...c.processEnv }, UB, CLIENT_ID));
      const config = await loadClientConfig(plan.env, { cwd });
      assert.equal(config.token, 'b2f1c0de-1234-4321-8888-0123456789ab');
      assert.equal(config.scmType, c.scmType);
      assert.equal(config.clientId, CLIENT_ID);
      assert.equal(config.serverUrl, serverUrl);
      assert.ok(config.acceptSource.fromPreset, 'the preset rules');
      assert.ok(config.acceptSource.inject, "Snyk's ACCEPT_* rules are injected");
      assert.ok(config.privateRules.rules.length > 0);
      assert.deepEqual([...ruleHosts(config)].sort(), [...c.hosts].sort());
      // Snyk's jira-bearer-auth template names ${JIRA_USERNAME} in two bearer rules (unused with scheme bearer).
      const unset = config.privateRules.unsetVariables().map((u) => u.name).filter((n) => n !== 'GIT_CLIENT_URL' && !(c.scmType === 'jira-bearer-auth' && n === 'JIRA_USERNAME'));
      assert.deepEqual(unset, [], `unset variables in the rules: ${unset.join(', ')}`);
      assert.equal(config.dispatcherBaseUrl, UB.apiBaseUrl);
      assert.equal(config.validation?.url, c.validationUrl);
      if (c.validationAuth) assert.equal(config.validation?.credentials[0]?.authorization, c.validationAuth);
      for (const s of c.secrets) assert.ok(config.secrets.some((x) => x.includes(s)), `${s} is scrubbed`);
      assert.ok(!config.secrets.includes(UB.oauth!.clientSecret) && !Object.values(config.env).includes(UB.oauth!.clientSecret));
      for (const [k, v] of Object.entries(config.env)) assert.ok(!/\$\{[A-Z_]+\}/.test(v ?? ''), `${k}=${v} keeps a \${} reference`);
    });
  }
});
