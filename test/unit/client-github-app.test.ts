// GitHub App pieces (issue 21): the App JWT, the settings' checks, and the classic template's
// rules given the App token, compared with Snyk's own Universal rules for the type.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintAppJwt } from '../../src/client/github-app/app-jwt.js';
import { readGithubApp } from '../../src/config/github-app.js';
import { EnvReader } from '../../src/config/env.js';
import { loadClientConfig } from '../../src/config/client.js';
import { compileRules, withGithubAppAuth, usesGithubAppToken, loadAcceptFile, type AcceptRule } from '../../src/filters/index.js';
import { authorize } from '../../src/client/request-filter.js';
import type { RelayContext } from '../../src/client/relay-context.js';
import { silentLogger } from '../../src/observability/logger.js';
import { templatesDir } from '../../src/config/presets.js';
import { checkAppJwt } from '../support/fake-github.js';
import { SNYK_BROKER_DATA_DIR } from '../support/paths.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

test('the App JWT: RS256 that verifies with the public key, iat now−60 s, exp now+600 s, iss the App ID', () => {
  const now = Date.UTC(2026, 11, 7, 12, 0, 0);
  const { jwt, expiresAt } = mintAppJwt('424242', rsa.privateKey, now);
  assert.deepEqual(checkAppJwt(jwt, rsa.publicKey, '424242', now / 1000), { ok: true });
  const claims = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
  assert.deepEqual(claims, { iat: now / 1000 - 60, exp: now / 1000 + 600, iss: '424242' });
  assert.equal(expiresAt, now + 600_000);
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
  assert.deepEqual(checkAppJwt(jwt, other.publicKey, '424242', now / 1000), { ok: false, why: 'bad signature' });
});

async function problemsOf(env: Record<string, string>): Promise<string[]> {
  const r = new EnvReader(env);
  await readGithubApp(r, 'github-server-app');
  try {
    r.done();
    return [];
  } catch (err) {
    return (err as { problems: string[] }).problems;
  }
}

test('GitHub App settings: all or none, numeric IDs, a readable RSA key', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gha-unit-'));
  const key = join(dir, 'app.pem');
  await writeFile(key, rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }));
  const ec = join(dir, 'ec.pem');
  await writeFile(ec, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const full = { GITHUB_APP_ID: '1', GITHUB_APP_CLIENT_ID: 'Iv1.x', GITHUB_APP_INSTALLATION_ID: '2', GITHUB_APP_PRIVATE_PEM_PATH: key, GITHUB_API: 'ghe.example.com/api/v3' };
  assert.deepEqual(await problemsOf(full), []);
  const r = new EnvReader(full);
  assert.equal((await readGithubApp(r, undefined))?.apiBaseUrl, 'https://ghe.example.com/api/v3');
  assert.deepEqual(await problemsOf({}), [], 'no App asked for');
  const [missing] = await problemsOf({ GITHUB_APP_ID: '1' });
  assert.match(missing!, /GITHUB_APP_ID is set but GITHUB_APP_CLIENT_ID, GITHUB_APP_INSTALLATION_ID, GITHUB_APP_PRIVATE_PEM_PATH, GITHUB_API are not/);
  assert.match((await problemsOf({ ...full, GITHUB_APP_ID: 'Iv1.abc' }))[0]!, /GITHUB_APP_ID: "Iv1.abc" is not a GitHub App ID/);
  assert.match((await problemsOf({ ...full, GITHUB_APP_PRIVATE_PEM_PATH: ec }))[0]!, /holds a ec key; a GitHub App key is RSA/);
  assert.match((await problemsOf({ ...full, GITHUB_APP_PRIVATE_PEM_PATH: join(dir, 'none.pem') }))[0]!, /GITHUB_APP_PRIVATE_PEM_PATH: cannot read .*none\.pem \(ENOENT\)/);
  const keyText = await readFile(key, 'utf8');
  for (const p of await problemsOf({ ...full, GITHUB_APP_PRIVATE_PEM_PATH: ec })) assert.ok(!p.includes(keyText.split('\n')[1]!));
});

const ruleKey = (r: AcceptRule) => `${(r.method ?? 'get').toUpperCase()} ${r.path}`;

test("the classic github-server-app template with the App: the same credential on each rule as Snyk's Universal rules for the type", { skip: SNYK_BROKER_DATA_DIR ? false : 'no snyk-broker-data (../shared or SNYK_BROKER_DATA_DIR)' }, async () => {
  const classic = await loadAcceptFile(join(templatesDir(), 'github-server-app', 'accept.json.sample'));
  assert.equal(usesGithubAppToken(classic), false);
  const { accept, changed } = withGithubAppAuth(classic);
  assert.ok(changed > 150, `${changed} rules changed`);
  assert.equal(usesGithubAppToken(accept), true);
  const snyk = JSON.parse(await readFile(join(SNYK_BROKER_DATA_DIR!, 'defaultFilters', 'github-server-app.json'), 'utf8')) as { private: AcceptRule[] };
  const snykByKey = new Map(snyk.private.map((r) => [ruleKey(r), r]));
  let compared = 0;
  for (const rule of accept.private) {
    const theirs = snykByKey.get(ruleKey(rule));
    if (!theirs) continue;
    compared++;
    assert.deepEqual(rule.auth, theirs.auth, `${ruleKey(rule)}: auth`);
    assert.equal(rule.origin, theirs.origin, `${ruleKey(rule)}: origin`);
  }
  assert.ok(compared >= 180, `only ${compared} rules in common`);
  // Every one of Snyk's rules is there (the App's own endpoints added).
  const ours = new Set(accept.private.map(ruleKey));
  assert.deepEqual([...snykByKey.keys()].filter((k) => !ours.has(k)), []);
});

test('a rule that reads the App token and a _POOL variable takes one pool value per request (the rule is found once, resolved once, after the token)', async () => {
  const rules = compileRules(
    [{ method: 'GET', path: '/repos/*', origin: 'https://${GITHUB_API}', auth: { scheme: 'bearer', token: '${GHA_ACCESS_TOKEN}' } }, { method: 'GET', path: '/pooled/*', origin: 'https://${GHE_HOST}', auth: { scheme: 'bearer', token: '${GHA_ACCESS_TOKEN}' } }],
    { GITHUB_API: 'api.example.com', GHE_HOST_POOL: 'a.example.com,b.example.com,c.example.com' },
  );
  let fetched = 0;
  const live = { names: new Set(['GHA_ACCESS_TOKEN', 'JWT_TOKEN']), values: async () => ({ GHA_ACCESS_TOKEN: `ghs_${++fetched}`, JWT_TOKEN: 'jwt' }) };
  const ctx = { opts: { rules: () => rules, liveVars: live }, log: silentLogger() } as unknown as RelayContext;
  const req = (url: string) => ({ url, method: 'GET', headers: {}, streamingID: '' });
  const seen: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await authorize(ctx, req(`/pooled/x${i}`), 'id');
    assert.ok(!('head' in r), 'refused');
    seen.push(`${new URL(r.targetUrl).host} ${r.authorization}`);
  }
  assert.deepEqual(seen, ['a.example.com Bearer ghs_1', 'b.example.com Bearer ghs_2', 'c.example.com Bearer ghs_3']);
  const plain = await authorize(ctx, req('/nothing'), 'id');
  assert.ok('head' in plain && plain.head.status === 401);
  assert.equal(fetched, 3, 'a refused request waited for a token');
});

test("github-cloud-app preset: github-server-app's classic rules without its two webhook updates, github.com's hosts, the App's token on every GitHub rule", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cloud-app-'));
  const key = join(dir, 'app.pem');
  await writeFile(key, rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
  const config = await loadClientConfig({ BROKER_TOKEN: '6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b', BROKER_SCM_TYPE: 'github-cloud-app', GITHUB_APP_ID: '1', GITHUB_APP_CLIENT_ID: 'Iv1.x', GITHUB_APP_INSTALLATION_ID: '2', GITHUB_APP_PRIVATE_PEM_PATH: key }, { cwd: dir });
  assert.equal(config.githubApp?.apiBaseUrl, 'https://api.github.com', 'GITHUB_API comes from the preset');
  assert.equal(config.env.GITHUB, 'github.com');
  assert.equal(config.env.GITHUB_RAW, 'raw.githubusercontent.com');
  assert.equal(config.env.GITHUB_GRAPHQL, 'api.github.com');
  const server = await loadAcceptFile(join(templatesDir(), 'github-server-app', 'accept.json.sample'));
  const cloud = await loadAcceptFile(join(templatesDir(), 'github-cloud-app', 'accept.json.sample'));
  const dropped = server.private.map(ruleKey).filter((k) => !cloud.private.map(ruleKey).includes(k));
  assert.deepEqual(dropped, ['PATCH /repos/:name/:repo/hooks/:id/config', 'PATCH /repos/:name/:repo/hooks/:id']);
  const user = config.privateRules.match({ method: 'GET', url: '/user', headers: {} }, { GHA_ACCESS_TOKEN: 'ghs_live', JWT_TOKEN: 'jwt' });
  assert.ok(user.allowed);
  assert.equal(user.targetUrl, 'https://api.github.com/user');
  assert.equal(user.authorization, 'Bearer ghs_live');
  assert.equal(config.privateRules.match({ method: 'PATCH', url: '/repos/o/r/hooks/1', headers: {} }).allowed, false, 'github-cloud-app has no webhook update rule');
});

test("the github-cloud-app preset with the App: the same rules and credential as Snyk's Universal rules for the type", { skip: SNYK_BROKER_DATA_DIR ? false : 'no snyk-broker-data (../shared or SNYK_BROKER_DATA_DIR)' }, async () => {
  const { accept } = withGithubAppAuth(await loadAcceptFile(join(templatesDir(), 'github-cloud-app', 'accept.json.sample')));
  const snyk = JSON.parse(await readFile(join(SNYK_BROKER_DATA_DIR!, 'defaultFilters', 'github-cloud-app.json'), 'utf8')) as { private: AcceptRule[]; public: AcceptRule[] };
  const snykByKey = new Map(snyk.private.map((r) => [ruleKey(r), r]));
  const ours = new Map(accept.private.map((r) => [ruleKey(r), r]));
  assert.deepEqual([...snykByKey.keys()].filter((k) => !ours.has(k)), [], "Snyk's rules missing here");
  for (const [k, theirs] of snykByKey) {
    assert.deepEqual(ours.get(k)!.auth, theirs.auth, `${k}: auth`);
    assert.equal(ours.get(k)!.origin, theirs.origin, `${k}: origin`);
  }
  assert.deepEqual(accept.public, snyk.public);
});
