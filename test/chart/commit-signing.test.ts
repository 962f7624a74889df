// The chart's commit signing values (snyk-universal-broker-helm's commitSigning.* and
// commitSigningSecret.name): what is rendered, and the rendered client run as a process
// (kubelet.ts) to show the key reaches it and unlocks, from the chart's own Secret and from a
// Secret written the way Snyk's chart writes it (GIT_COMMITER_*, one T).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerOf, ofKind, render, renderError, type K8sObject, type RenderOptions } from './helm.js';
import { planPod, readImageConfig } from './kubelet.js';
import { Proc, freePort, waitFor } from './procs.js';
import { makeTestKey, type TestKey } from '../support/pgp.js';

const TOKEN = '9d3a7c2e-5b1f-4e8a-a6d4-0c2b9f7e1a35';
const FULL = 'rel-ha-broker';
const base = { brokerToken: TOKEN, scmToken: 'ghp_x' };
const b64 = (s: string) => Buffer.from(s).toString('base64');

let dir: string;
let key: TestKey;
let keyFile: string;
const procs: Proc[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chart-signing-'));
  key = await makeTestKey('ecc');
  // Multi-line, as operators pass it: --set-file commitSigning.gpgPrivateKey=key.asc
  keyFile = join(dir, 'key.asc');
  await writeFile(keyFile, key.privateKey);
});
after(async () => {
  await Promise.all(procs.map((p) => p.kill()));
  await rm(dir, { recursive: true, force: true });
});

function inline(): RenderOptions {
  return {
    set: { 'commitSigning.enabled': true },
    setString: { ...base, 'commitSigning.name': 'Fix Bot', 'commitSigning.email': 'fix-bot@example.com', 'commitSigning.passphrase': key.passphrase },
    setFile: { 'commitSigning.gpgPrivateKey': keyFile },
  };
}

const envFromOf = (d: K8sObject) => (containerOf(d).envFrom ?? []) as Array<{ secretRef?: { name: string } }>;

describe('commit signing values', () => {
  test('inline values: a Secret of the chart with the four variables, loaded with envFrom, and a checksum that rolls the pods', async () => {
    const objs = await render(inline());
    const secret = objs.find((o) => o.kind === 'Secret' && o.metadata.name === `${FULL}-commit-signing`);
    assert.ok(secret, 'no commit signing Secret');
    assert.deepEqual(secret.data, { GIT_COMMITTER_NAME: b64('Fix Bot'), GIT_COMMITTER_EMAIL: b64('fix-bot@example.com'), GPG_PRIVATE_KEY: b64(key.privateKey), GPG_PASSPHRASE: b64(key.passphrase) });
    for (const d of ofKind(objs, 'Deployment')) {
      assert.deepEqual(envFromOf(d), [{ secretRef: { name: `${FULL}-commit-signing` } }]);
      assert.match(d.spec.template.metadata.annotations?.['checksum/commit-signing'] ?? '', /^[0-9a-f]{64}$/);
    }
  });

  test('commitSigningSecret.name: that Secret with envFrom, none of the chart', async () => {
    const objs = await render({ set: { 'commitSigning.enabled': true }, setString: { ...base, 'commitSigningSecret.name': 'snyk-signing' } });
    assert.ok(!objs.some((o) => o.metadata.name === `${FULL}-commit-signing`));
    for (const d of ofKind(objs, 'Deployment')) assert.deepEqual(envFromOf(d), [{ secretRef: { name: 'snyk-signing' } }]);
  });

  test("a missing value is a render error in snyk-universal-broker-helm's words; off renders nothing", async () => {
    const o = inline();
    delete o.setString!['commitSigning.passphrase'];
    assert.match(await renderError(o), /Missing value\(s\) under \.Values\.commitSigning for: passphrase/);
    const off = await render({ setString: { ...base, 'commitSigning.name': 'x' } });
    assert.ok(!off.some((x) => x.metadata.name === `${FULL}-commit-signing`));
    for (const d of ofKind(off, 'Deployment')) assert.deepEqual(envFromOf(d), []);
  });
});

/** Runs the rendered client until it logs that signing is on (the key unlocked), or fails with its logs. */
async function runUntilSigning(objs: K8sObject[], name: string): Promise<Proc> {
  const image = await readImageConfig();
  const plan = await planPod(ofKind(objs, 'Deployment')[0]!, objs, { image, dns: new Map(), hostPort: await freePort(), filesDir: join(dir, name) });
  const proc = new Proc(name, plan.command, plan.args, { cwd: plan.cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ...plan.env, BROKER_SERVER_URL: 'http://127.0.0.1:9', PREFLIGHT_CHECKS_ENABLED: 'false' } });
  procs.push(proc);
  await waitFor(`${name} to log that commit signing is on`, () => {
    if (!proc.running) throw new Error(`${name} exited ${JSON.stringify(proc.exitInfo)}\n${proc.logs()}`);
    return proc.hasLog(/commit signing: commits made through GitHub's Git Data API are signed/);
  }, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${proc.logs()}`);
  });
  return proc;
}

describe('the rendered client with commit signing, run as a process', { timeout: 120_000 }, () => {
  test("the chart's Secret: the key reaches the client and unlocks", async () => {
    const proc = await runUntilSigning(await render(inline()), 'inline');
    assert.ok(proc.hasLog(/"committer":"Fix Bot <fix-bot@example\.com>"/), proc.logs());
    await proc.kill();
  });

  test("a Secret as snyk-universal-broker-helm writes it (GIT_COMMITER_*, one T): signing turns on, where Snyk's client leaves it off", async () => {
    const objs = await render({ set: { 'commitSigning.enabled': true }, setString: { ...base, 'commitSigningSecret.name': 'snyk-signing' } });
    const snykSecret: K8sObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'snyk-signing' },
      data: { GPG_PRIVATE_KEY: b64(key.privateKey), GPG_PASSPHRASE: b64(key.passphrase), GIT_COMMITER_NAME: b64('Snyk Chart Bot'), GIT_COMMITER_EMAIL: b64('chart-bot@example.com') },
    } as K8sObject;
    const proc = await runUntilSigning([...objs, snykSecret], 'snyk-secret');
    assert.ok(proc.hasLog(/"committer":"Snyk Chart Bot <chart-bot@example\.com>"/), proc.logs());
    await proc.kill();
  });
});
