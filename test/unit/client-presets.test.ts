// SCM presets (BROKER_SCM_TYPE): each of Snyk's templates starts with only the variables Snyk's docs
// ask for (the placeholders of the template's .env), with the .env defaults applied and expanded as
// Snyk's client does; the environment wins over ./.env, which wins over the preset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { request } from 'undici';
import { loadClientConfig } from '../../src/config/client.js';
import { ConfigError } from '../../src/config/errors.js';
import { parseDotenv, expandDollarVars } from '../../src/config/dotenv.js';
import { isPlaceholder, templatesDir } from '../../src/config/presets.js';
import { RuleSet, authorizationFor, type AcceptRule } from '../../src/filters/index.js';
import { createClient } from '../../src/client/main.js';
import { createEgress } from '../../src/http/egress.js';
import { createLogger, SecretScrubber } from '../../src/observability/logger.js';
import { freePort } from '../support/ports.js';
import { SNYK_BROKER_DIR } from '../support/paths.js';

const TOKEN = '0b7c6f1e-2d3a-4b5c-8d9e-0f1a2b3c4d5e';
const STARTED = ['github-com', 'github-enterprise', 'gitlab', 'bitbucket-server', 'bitbucket-server-bearer-auth', 'azure-repos', 'jira', 'artifactory', 'nexus'];

/** The variables Snyk's docs ask for: the template .env's placeholders (BROKER_CLIENT_URL is optional). */
async function documentedVars(type: string): Promise<Record<string, string>> {
  const env = parseDotenv(await readFile(join(templatesDir(), type, '.env.sample'), 'utf8'));
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (!isPlaceholder(v) || k === 'BROKER_TOKEN' || k === 'BROKER_CLIENT_URL') continue;
    out[k] = /URL$/.test(k) ? `https://user:pw-${k.toLowerCase()}@${type}.internal.example` : /HOST|^GITHUB$|^GITLAB$|^BITBUCKET$|HOSTNAME/.test(k) ? `${type}.internal.example` : `secret-${k.toLowerCase()}-123`;
  }
  return out;
}

async function emptyDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'preset-cwd-'));
}

for (const type of STARTED) {
  test(`${type}: starts with only Snyk's documented variables`, async () => {
    const vars = await documentedVars(type);
    assert.ok(Object.keys(vars).length > 0, `${type}: no documented variables found`);
    // BROKER_SERVER_URL would default to Snyk's server: a closed local port keeps the test offline.
    const env = { BROKER_SCM_TYPE: type, BROKER_TOKEN: TOKEN, BROKER_SERVER_URL: `http://127.0.0.1:${await freePort()}`, PORT: '0', ...vars };
    const config = await loadClientConfig(env, { cwd: await emptyDir() });
    assert.equal(config.scmType, type);
    assert.ok(config.acceptSource.fromPreset && config.acceptSource.inject);
    assert.ok(config.privateRules.rules.length > 0);
    const unset = config.privateRules.unsetVariables().map((u) => u.name);
    // GIT_CLIENT_URL is for Snyk's code agent only; Snyk's GHE image and docs leave GITHUB_RAW unset too.
    const expectedUnset = type === 'github-enterprise' ? ['GITHUB_RAW'] : [];
    assert.deepEqual(unset.filter((n) => n !== 'GIT_CLIENT_URL'), expectedUnset, `${type}: unset ${unset.join(', ')}`);
    for (const v of Object.values(vars)) if (v.length >= 4) assert.ok(config.secrets.some((s) => s.includes(v) || v.includes(s)) || !/secret|pw-/.test(v), `${type}: ${v} not scrubbed`);
    const lines: string[] = [];
    const scrubber = new SecretScrubber();
    scrubber.add(...config.secrets);
    const logger = createLogger({ level: 'info', scrubber, destination: { write: (s: string) => void lines.push(s) } });
    const egress = await createEgress({ caFiles: [], rejectUnauthorized: true });
    const client = createClient(config, { logger, egress, host: '127.0.0.1', scrubber });
    try {
      const { port } = await client.start();
      const res = await request(`http://127.0.0.1:${port}/livez`);
      await res.body.dump();
      assert.equal(res.statusCode, 200);
    } finally {
      await client.stop('test');
      await egress.close();
    }
  });
}

test('preset defaults from the template .env, expanded as Snyk does; the environment wins', async () => {
  const cwd = await emptyDir();
  const base = { BROKER_TOKEN: TOKEN };
  const gh = await loadClientConfig({ ...base, BROKER_SCM_TYPE: 'github-com', GITHUB_TOKEN: 'ghp_abc123' }, { cwd });
  assert.equal(gh.env.GITHUB, 'github.com');
  assert.equal(gh.env.GITHUB_API, 'api.github.com');
  assert.equal(gh.env.GITHUB_RAW, 'raw.githubusercontent.com');
  assert.equal(gh.env.GITHUB_GRAPHQL, 'api.github.com');
  assert.equal(gh.validation?.url, 'https://api.github.com/user');
  assert.equal(gh.validation?.authorizationHeader, 'token ghp_abc123');
  assert.equal(gh.serverUrl, 'https://broker.snyk.io');
  const ghe = await loadClientConfig({ ...base, BROKER_SCM_TYPE: 'github-enterprise', GITHUB_TOKEN: 't0k3n', GITHUB: 'ghe.acme.test' }, { cwd });
  assert.equal(ghe.env.GITHUB_API, 'ghe.acme.test/api/v3');
  assert.equal(ghe.validation?.url, 'https://ghe.acme.test/api/v3/user', 'a default refers to another default that refers to the environment');
  const gl = await loadClientConfig({ ...base, BROKER_SCM_TYPE: 'gitlab', GITLAB_TOKEN: 'glpat-1', GITLAB: 'gitlab.acme.test' }, { cwd });
  assert.equal(gl.removeXForwardedHeaders, true);
  assert.equal(gl.validation?.url, 'https://gitlab.acme.test/api/v3/user?private_token=glpat-1');
  const nx = await loadClientConfig({ ...base, BROKER_SCM_TYPE: 'nexus', BASE_NEXUS_URL: 'https://u:p4ss@nexus.acme.test' }, { cwd });
  assert.equal(nx.env.NEXUS_URL, 'https://u:p4ss@nexus.acme.test/repository');
  assert.equal(nx.removeXForwardedHeaders, true);
  const az = await loadClientConfig({ ...base, BROKER_SCM_TYPE: 'azure-repos', AZURE_REPOS_TOKEN: 'azt0ken', AZURE_REPOS_ORG: 'acme' }, { cwd });
  assert.equal(az.validation?.basicAuth, 'PAT:azt0ken');
  assert.equal(az.validation?.url, 'https://dev.azure.com/acme/_apis/git/repositories');
  assert.equal(az.env.AZURE_REPOS_USER_ENTITLEMENTS_HOST, 'vsaex.dev.azure.com');
  // The environment wins over a preset default.
  const own = await loadClientConfig({ ...base, BROKER_SCM_TYPE: 'github-com', GITHUB_TOKEN: 'x1234', GITHUB_API: 'gh-proxy.acme.test', BROKER_SERVER_URL: 'https://broker.eu.snyk.io' }, { cwd });
  assert.equal(own.validation?.url, 'https://gh-proxy.acme.test/user');
  assert.equal(own.serverUrl, 'https://broker.eu.snyk.io');
  // A default that refers to an unset variable is left out, and said so.
  const gh2 = await loadClientConfig({ ...base, BROKER_SCM_TYPE: 'gitlab' }, { cwd });
  assert.equal(gh2.validation, undefined);
  assert.ok(gh2.startNotes.some((n) => n.level === 'warn' && /BROKER_CLIENT_VALIDATION_URL/.test(n.message) && /\$GITLAB_TOKEN/.test(n.message)), JSON.stringify(gh2.startNotes));
  // Placeholders are no defaults: BROKER_TOKEN stays required.
  await assert.rejects(loadClientConfig({ BROKER_SCM_TYPE: 'github-com' }, { cwd }), (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.startsWith('BROKER_TOKEN is required')));
});

test('a .env in the working directory is read; the environment wins over it, it wins over the preset', async () => {
  const cwd = await emptyDir();
  await writeFile(join(cwd, '.env'), ['# Snyk-style .env', 'BROKER_SCM_TYPE=gitlab', 'GITLAB=gitlab.from-dotenv.test', 'GITLAB_TOKEN="glpat from file"', 'export LOG_LEVEL=warn', 'REMOVE_X_FORWARDED_HEADERS=false'].join('\n'));
  const c = await loadClientConfig({ BROKER_TOKEN: TOKEN, GITLAB_TOKEN: 'glpat-env' }, { cwd });
  assert.equal(c.scmType, 'gitlab');
  assert.equal(c.env.GITLAB, 'gitlab.from-dotenv.test');
  assert.equal(c.env.GITLAB_TOKEN, 'glpat-env');
  assert.equal(c.logLevel, 'warn');
  assert.equal(c.removeXForwardedHeaders, false, 'the .env wins over the preset default');
  assert.equal(c.validation?.url, 'https://gitlab.from-dotenv.test/api/v3/user?private_token=glpat-env');
  assert.ok(c.startNotes.some((n) => /\.env/.test(n.message)));
});

test('ACCEPT: an explicit file wins over the preset; ACCEPT=accept.json with no such file means the preset', async () => {
  const cwd = await emptyDir();
  const file = join(cwd, 'mine.json');
  await writeFile(file, JSON.stringify({ private: [{ method: 'GET', path: '/only', origin: 'https://h.test' }], public: [] }));
  const mine = await loadClientConfig({ BROKER_TOKEN: TOKEN, BROKER_SCM_TYPE: 'github-com', GITHUB_TOKEN: 'ghp_1', ACCEPT: file, ACCEPT_CODE: 'true' }, { cwd });
  assert.equal(mine.acceptPath, file);
  assert.equal(mine.privateRules.rules.length, 1, 'no injection into a custom accept file (as snyk-broker)');
  assert.equal(mine.customAccept, true);
  const dflt = await loadClientConfig({ BROKER_TOKEN: TOKEN, BROKER_SCM_TYPE: 'github-com', GITHUB_TOKEN: 'ghp_1', ACCEPT: 'accept.json', ACCEPT_CODE: 'true' }, { cwd });
  assert.ok(dflt.acceptSource.fromPreset);
  assert.ok(dflt.privateRules.rules.some((r) => r.path === '/*/git-upload-pack'), 'ACCEPT_CODE rules injected into the preset');
  await writeFile(join(cwd, 'accept.json'), JSON.stringify({ private: [], public: [] }));
  const local = await loadClientConfig({ BROKER_TOKEN: TOKEN, BROKER_SCM_TYPE: 'github-com', GITHUB_TOKEN: 'ghp_1', ACCEPT: 'accept.json' }, { cwd });
  assert.equal(local.acceptPath, join(cwd, 'accept.json'));
});

test('container-registry-agent and unknown types are refused, naming why', async () => {
  const cwd = await emptyDir();
  await assert.rejects(loadClientConfig({ BROKER_TOKEN: TOKEN, BROKER_SCM_TYPE: 'container-registry-agent' }, { cwd }), (e: unknown) => e instanceof ConfigError && /Container Registry Agent image/.test(e.problems.join()));
  await assert.rejects(loadClientConfig({ BROKER_TOKEN: TOKEN, BROKER_SCM_TYPE: 'svn' }, { cwd }), (e: unknown) => e instanceof ConfigError && /BROKER_SCM_TYPE must be one of github-com/.test(e.problems.join()));
});

test('.env parsing and $VAR expansion', () => {
  assert.deepEqual(
    parseDotenv('A=1\n# c\nexport B = two words # note\nC="quoted # kept"\nD=\'single $X\'\nE="Bearer $P",\nF="multi\nline"\nG=\n'),
    { A: '1', B: 'two words', C: 'quoted # kept', D: 'single $X', E: 'Bearer $P', F: 'multi\nline', G: '' },
  );
  const x = expandDollarVars({ HOST: 'h.test', API: '$HOST/api', URL: 'https://$API/user', LEFT: '$MISSING/x', ESC: '\\$HOST', LOOP: '$LOOP2', LOOP2: '$LOOP' });
  assert.equal(x.URL, 'https://h.test/api/user');
  assert.equal(x.LEFT, '$MISSING/x');
  assert.equal(x.ESC, '\\$HOST');
  assert.ok(typeof x.LOOP === 'string');
  const p = expandDollarVars({ GITHUB_TOKEN_POOL: 'a1,b2', HDR: 'token $GITHUB_TOKEN' });
  assert.equal(p.HDR_POOL, 'token a1,token b2');
});

test('auth shapes of Snyk\'s templates give the header snyk-broker\'s own auth-header function gives', async () => {
  const require = createRequire(import.meta.url);
  const snykAuth = (require(join(SNYK_BROKER_DIR, 'dist', 'lib', 'hybrid-sdk', 'common', 'utils', 'auth-header.js')) as { default: (auth: unknown, config: unknown) => string | undefined }).default;
  const vars: Record<string, string> = {
    BITBUCKET_USERNAME: 'bob', BITBUCKET_PASSWORD: 'b0b-pw', BITBUCKET_PAT: 'bbpat', JIRA_USERNAME: 'jira-u', JIRA_PASSWORD: 'jira-pw', JIRA_PAT: 'jirapat',
    BROKER_CLIENT_VALIDATION_BASIC_AUTH: 'PAT:az-token', SONARQUBE_API_TOKEN: 'sq-token', GITHUB_TOKEN: 'ghp_x', GHA_ACCESS_TOKEN: 'gha',
  };
  const shapes = new Map<string, AcceptRule>();
  for (const type of ['apprisk', 'azure-repos', 'bitbucket-server', 'bitbucket-server-bearer-auth', 'jira', 'jira-bearer-auth', 'github-server-app']) {
    const doc = JSON.parse(await readFile(join(templatesDir(), type, 'accept.json.sample'), 'utf8')) as { private: AcceptRule[] };
    for (const r of doc.private) if (r.auth) shapes.set(JSON.stringify(r.auth), r);
  }
  assert.ok(shapes.size >= 5, `only ${shapes.size} auth shapes found`);
  for (const [shape, rule] of shapes) {
    const set = new RuleSet([{ ...rule, path: '/x', origin: 'https://o.test' }], vars);
    const m = set.match({ method: rule.method ?? 'GET', url: '/x', headers: {} });
    assert.ok(m.allowed, shape);
    const theirs = snykAuth(rule.auth, vars);
    // snyk-broker writes the token scheme "Token"; header schemes are case-insensitive.
    assert.equal(m.authorization?.toLowerCase(), theirs?.toLowerCase(), `${shape}`);
  }
  assert.equal(authorizationFor({ scheme: 'basic', token: 'PAT:az-token' }), `Basic ${Buffer.from('PAT:az-token').toString('base64')}`);
  // Credentials in the origin: GitHub's token@host and Nexus's user:password@host.
  const origins = new RuleSet([{ path: '/gh', origin: 'https://${GITHUB_TOKEN}@${GITHUB_API}' }, { path: '/nx', origin: '${BASE_NEXUS_URL}' }], { GITHUB_TOKEN: 'ghp_x', GITHUB_API: 'api.test', BASE_NEXUS_URL: 'https://nx-user:nx-pw@nexus.test' });
  const gh = origins.match({ method: 'GET', url: '/gh', headers: {} });
  assert.ok(gh.allowed && gh.authorization === 'token ghp_x' && gh.targetUrl === 'https://api.test/gh');
  const nx = origins.match({ method: 'GET', url: '/nx', headers: {} });
  assert.ok(nx.allowed && nx.authorization === `Basic ${Buffer.from('nx-user:nx-pw').toString('base64')}` && nx.targetUrl === 'https://nexus.test/nx');
});
