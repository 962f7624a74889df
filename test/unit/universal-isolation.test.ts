// A Universal Broker connection's environment holds its own credentials only: the variables
// other connections' references name never reach it, so no rule or substitution of one
// connection can send another's credential.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planConnection, referencedVariables, isRunnable } from '../../src/client/universal/connection-env.js';
import type { DeploymentConnection } from '../../src/client/universal/connections-source.js';
import { readUniversalConfig } from '../../src/config/universal.js';
import { EnvReader } from '../../src/config/env.js';

const ub = readUniversalConfig(new EnvReader({ DEPLOYMENT_ID: 'd', CLIENT_ID: 'c', CLIENT_SECRET: 's' }));
const conns: DeploymentConnection[] = [
  { name: 'gh', id: '1', type: 'github', identifier: 'id-gh', values: { GITHUB_TOKEN: '${GH_SECRET}' }, contexts: { c1: { GITHUB_TOKEN: '${GH_CTX_SECRET}' } } },
  { name: 'gl', id: '2', type: 'gitlab', identifier: '${GL_IDENTIFIER}', values: { GITLAB_TOKEN: '${GL_SECRET}', GITLAB: 'gitlab.corp' }, contexts: {} },
];
const env = { GH_SECRET: 'gh-value', GH_CTX_SECRET: 'ctx-value', GL_SECRET: 'gl-value', GL_IDENTIFIER: 'id-gl', HTTPS_PROXY: 'http://proxy:3128' };

test('every referenced variable is found: values, identifiers, contexts', () => {
  assert.deepEqual([...referencedVariables(conns)].sort(), ['GH_CTX_SECRET', 'GH_SECRET', 'GL_IDENTIFIER', 'GL_SECRET']);
});

test("a connection gets its own values resolved, the process settings, and no other connection's credential", () => {
  const referenced = referencedVariables(conns);
  const gl = planConnection(conns[1]!, env, ub, 'client', referenced);
  assert.ok(isRunnable(gl));
  assert.equal(gl.env.GITLAB_TOKEN, 'gl-value');
  assert.equal(gl.env.BROKER_TOKEN, 'id-gl');
  assert.equal(gl.env.HTTPS_PROXY, 'http://proxy:3128');
  const text = JSON.stringify(gl.env);
  for (const foreign of ['gh-value', 'ctx-value']) assert.ok(!text.includes(foreign), `another connection's credential (${foreign}) is in gitlab's environment`);
  const gh = planConnection(conns[0]!, env, ub, 'client', referenced);
  assert.ok(isRunnable(gh));
  assert.ok(!JSON.stringify(gh.env).includes('gl-value'));
  assert.equal((gh.contexts.c1 as { env: Record<string, string> }).env.GITHUB_TOKEN, 'ctx-value');
});

test("another connection leaving the deployment does not change a connection's definition (a sync leaves it alone)", () => {
  const all = referencedVariables(conns);
  const ghOnly = referencedVariables([conns[0]!]);
  const before = planConnection(conns[0]!, env, ub, 'client', all);
  const after = planConnection(conns[0]!, env, ub, 'client', ghOnly);
  assert.ok(isRunnable(before) && isRunnable(after));
  assert.notDeepEqual(before.env, after.env, 'the lent environment differs (GL_SECRET is no longer held back)');
  assert.equal(before.definition, after.definition);
  const changed = planConnection({ ...conns[0]!, values: { GITHUB_TOKEN: '${GH_CTX_SECRET}' } }, env, ub, 'client', all);
  assert.ok(isRunnable(changed));
  assert.notEqual(changed.definition, before.definition, 'a changed credential is a change');
});
