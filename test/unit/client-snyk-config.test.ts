// Snyk variables of issue 15 (items 4-6) at the configuration level: parsing and exit-2 errors,
// /systemcheck credentials and pools, pool rotation per request, INSECURE_DOWNSTREAM's URL
// switch, and the list of unimplemented Snyk variables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadClientConfig } from '../../src/config/client.js';
import { configProblems } from '../support/config-problems.js';
import { expandPooled, validationCredentials } from '../../src/config/validation-credentials.js';
import { unsupportedSnykVariables, UNSUPPORTED_SNYK_VARIABLES } from '../../src/config/unsupported-snyk-vars.js';
import { toInsecure } from '../../src/client/insecure-downstream.js';
import { RuleSet, VariableResolver } from '../../src/filters/index.js';
import { writeAcceptFile } from '../support/client-harness.js';

const TOKEN = 'b9460892-5397-48f1-8697-488769ae3797';

async function base(): Promise<Record<string, string>> {
  return { BROKER_TOKEN: TOKEN, BROKER_SERVER_URL: 'https://broker.example.com', ACCEPT: await writeAcceptFile({ private: [], public: [] }) };
}

const problems = (env: Record<string, string>) => configProblems(loadClientConfig, env);

test('defaults: all four off', async () => {
  const c = await loadClientConfig(await base());
  assert.equal(c.insecureDownstream, false);
  assert.equal(c.resBodyUrlSub, undefined);
  assert.equal(c.logEnableBody, false);
  assert.equal(c.disableSnippets, false);
});

test('values as Snyk documents them are read', async () => {
  const c = await loadClientConfig({ ...(await base()), INSECURE_DOWNSTREAM: 'true', LOG_ENABLE_BODY: 'yes', DISABLE_SNIPPETS: 'TRUE', RES_BODY_URL_SUB: 'https://nexus.example.com/repository/' });
  assert.equal(c.insecureDownstream, true);
  assert.equal(c.logEnableBody, true);
  assert.equal(c.disableSnippets, true);
  assert.equal(c.resBodyUrlSub, 'https://nexus.example.com/repository');
  for (const v of ['http://art.example.com/artifactory', 'nexus.example.com:8081/repository']) {
    assert.equal((await loadClientConfig({ ...(await base()), RES_BODY_URL_SUB: v })).resBodyUrlSub, v);
  }
});

test('a malformed value is a configuration error naming the variable (exit 2)', async () => {
  const found = await problems({ ...(await base()), INSECURE_DOWNSTREAM: 'maybe', LOG_ENABLE_BODY: 'sure', DISABLE_SNIPPETS: 'snip', RES_BODY_URL_SUB: 'ftp://nexus.example.com/repository' });
  for (const name of ['INSECURE_DOWNSTREAM', 'LOG_ENABLE_BODY', 'DISABLE_SNIPPETS', 'RES_BODY_URL_SUB']) assert.ok(found.some((p) => p.startsWith(name)), `${name} not named in ${found.join('; ')}`);
  for (const bad of ['https://user:s3cret@nexus.example.com/repository', 'https://', 'https://nexus example.com/x']) {
    const [p] = await problems({ ...(await base()), RES_BODY_URL_SUB: bad });
    assert.match(p!, /^RES_BODY_URL_SUB/);
    assert.ok(!p!.includes('s3cret'), 'a credential in the message');
  }
});

test('/systemcheck credentials: snyk-broker precedence, pools, and $VAR pools', () => {
  assert.deepEqual(validationCredentials({}), []);
  assert.deepEqual(validationCredentials({ BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER: 'token abc123456' }), [{ authorization: 'token abc123456', raw: 'abc123456' }]);
  assert.deepEqual(validationCredentials({ BROKER_CLIENT_VALIDATION_BASIC_AUTH: 'u:p' }), [{ authorization: `Basic ${Buffer.from('u:p').toString('base64')}`, raw: 'u:p' }]);
  // Pools first: the header pool, then the basic-auth pool, then the single values.
  const all = {
    BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER_POOL: 'token a1, token a2',
    BROKER_CLIENT_VALIDATION_BASIC_AUTH_POOL: 'u:1,u:2',
    BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER: 'token single',
  };
  assert.deepEqual(validationCredentials(all).map((c) => c.authorization), ['token a1', 'token a2']);
  assert.deepEqual(validationCredentials({ ...all, BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER_POOL: '' }).map((c) => c.raw), ['u:1', 'u:2']);
  // Snyk's images: BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER="token $GITHUB_TOKEN" with GITHUB_TOKEN_POOL set.
  assert.deepEqual(validationCredentials({ BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER: 'token $GITHUB_TOKEN', GITHUB_TOKEN_POOL: 'good1, bad2' }), [
    { authorization: 'token good1', raw: 'good1' },
    { authorization: 'token bad2', raw: 'bad2' },
  ]);
  assert.deepEqual(validationCredentials({ BROKER_CLIENT_VALIDATION_BASIC_AUTH: '$JIRA_USERNAME:${JIRA_PASSWORD}', JIRA_USERNAME: 'me', JIRA_PASSWORD_POOL: 'p1,p2' }).map((c) => c.raw), ['me:p1', 'me:p2']);
  assert.equal(expandPooled('token $X', { X: 'x' }), undefined);
});

test('every pooled validation credential is scrubbed from logs', async () => {
  const c = await loadClientConfig({ ...(await base()), BROKER_CLIENT_VALIDATION_URL: 'https://ghe.example/api/v3/user', BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER: 'token $GITHUB_TOKEN', GITHUB_TOKEN_POOL: 'pooled-one-111,pooled-two-222' });
  assert.deepEqual(c.validation?.credentials.map((x) => x.raw), ['pooled-one-111', 'pooled-two-222']);
  for (const s of ['pooled-one-111', 'pooled-two-222', 'token pooled-two-222']) assert.ok(c.secrets.includes(s), s);
});

test('credential pools: a request pins one value (origin, auth and var-sub agree); a set pool wins over the plain variable', () => {
  const vars = new VariableResolver({ T_POOL: 'a1,a2,a3', T: 'plain', U: 'u' });
  const one = vars.forRequest();
  assert.equal(one.substitute('${T}/${T}'), 'a1/a1');
  assert.equal(one.get('T'), 'a1');
  assert.equal(one.get('U'), 'u');
  assert.equal(vars.forRequest().get('T'), 'a2');
  assert.equal(vars.forRequest().substitute('${T}'), 'a3');
  assert.equal(vars.forRequest().get('T'), 'a1');
  assert.deepEqual(vars.allValues('T'), ['a1', 'a2', 'a3', 'plain'], 'every value is scrubbed, the unused plain one too');
  // Through a rule: an origin and an auth naming the same pooled variable get the same value.
  const set = new RuleSet([{ path: '/x', origin: 'https://${T}.example', auth: { scheme: 'bearer', token: '${T}' } }], { T_POOL: 'p1,p2' });
  const results = [1, 2, 3].map(() => set.match({ method: 'GET', url: '/x', headers: {} }));
  assert.deepEqual(results.map((r) => (r.allowed ? [r.targetUrl, r.authorization] : [])), [
    ['https://p1.example/x', 'Bearer p1'],
    ['https://p2.example/x', 'Bearer p2'],
    ['https://p1.example/x', 'Bearer p1'],
  ]);
});

test('INSECURE_DOWNSTREAM switches the scheme as snyk-broker does', () => {
  assert.equal(toInsecure('https://ghe.example.com/api/v3/x?y=1'), 'http://ghe.example.com/api/v3/x?y=1');
  assert.equal(toInsecure('https://ghe.example.com:8443/x'), 'http://ghe.example.com:8443/x');
  assert.equal(toInsecure('http://gitlab.local/x'), 'http://gitlab.local/x');
  assert.equal(toInsecure('https://api.snyk.io/x'), 'https://api.snyk.io/x');
});

test('unimplemented Snyk variables: set ones are named once each with a reason; empty or unknown ones are not', () => {
  const found = unsupportedSnykVariables({ UNIVERSAL_BROKER_ENABLED: 'true', CLIENT_SECRET: '', BROKER_DOWNSTREAM_TYPE_GITHUB: 'true', SNYK_GIT_CLIENT_URL: 'http://x', GITHUB_TOKEN: 't', ACCEPT_CODE: 'true', INSECURE_DOWNSTREAM: 'true', RES_BODY_URL_SUB: 'x' });
  assert.deepEqual(found.map((f) => f.variable), ['BROKER_DOWNSTREAM_TYPE_GITHUB', 'SNYK_GIT_CLIENT_URL', 'UNIVERSAL_BROKER_ENABLED']);
  for (const f of found) assert.ok(f.reason.length > 20);
  // Nothing our client reads is on the list.
  for (const implemented of ['INSECURE_DOWNSTREAM', 'RES_BODY_URL_SUB', 'LOG_ENABLE_BODY', 'DISABLE_SNIPPETS', 'BROKER_CLIENT_VALIDATION_URL', 'BROKER_CLIENT_URL', 'ACCEPT', 'PREFLIGHT_CHECKS_ENABLED']) {
    assert.ok(!UNSUPPORTED_SNYK_VARIABLES.some((e) => (e.name.endsWith('_') ? implemented.startsWith(e.name) : e.name === implemented)), implemented);
  }
});
