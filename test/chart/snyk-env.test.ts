// The env each client container gets from a values file written for Snyk's chart (snyk-broker-helm), variable by
// variable against what Snyk's chart and Snyk's image give.
//
// SNYK_CHART_ENV is written by hand from snyk-broker-helm's templates (_scmConfig.tpl, broker_deployment.yaml:
// the common variables, the per-scmType ones, ACCEPT_CODE/ACCEPT_IAC/ACCEPT_APPRISK without acceptJson, the env
// list, BROKER_DISPATCHER_BASE_URL always) for each ci/snyk-*-values.yaml file. Every variable where ours differs,
// and every variable only one side sets, is listed with the reason (the same list is in docs/migrating.md).
//
// Snyk's per-SCM image then runs `broker init <scmType>` (a .env from the template's .env.sample) and its
// client loads that .env under the environment and expands $VAR. Our chart sets BROKER_SCM_TYPE and our client
// applies the same template .env. The second test runs snyk-broker's own loader (loadBrokerConfig from the
// pinned devDependency, in a child process) over Snyk's chart env with the template's .env, our client's own
// resolveClientEnv over our rendered env, and compares the results.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { chartDir, packageDir } from './deps.js';
import { containerOf, ofKind, podSpecOf, render, type K8sObject } from './helm.js';
import { resolveClientEnv } from '../../src/config/client-env.js';
import { ensureSnykBrokerConfig } from '../support/snyk-broker.js';

const execFileAsync = promisify(execFile);
const TOKEN = '9d3a7c2e-5b1f-4e8a-a6d4-0c2b9f7e1a35';
const ACCEPT_DEFAULTS = { ACCEPT_CODE: 'true', ACCEPT_IAC: 'tf,yaml,yml,json,tpl', ACCEPT_APPRISK: 'true' };
/** Variables snyk-broker-helm sets whatever the scmType (broker_deployment.yaml) with the values' defaults. */
const SNYK_COMMON = {
  BROKER_SERVER_URL: 'https://broker.snyk.io',
  BROKER_HEALTHCHECK_PATH: '/healthcheck',
  BROKER_SYSTEMCHECK_PATH: '/systemcheck',
  LOG_LEVEL: 'info',
  LOG_ENABLE_BODY: 'false',
  BROKER_DISPATCHER_BASE_URL: 'https://api.snyk.io',
  PORT: '8000',
};

/** A variable whose value is a file: compared by the file's content. */
const file = (content: string) => `file:${content}`;

interface Case {
  values: string;
  scmType: string;
  /** What snyk-broker-helm renders (Secret references resolved; files by content). */
  snyk: Record<string, string>;
  /** Variables where ours differs from Snyk's chart on purpose: Snyk's and our value (undefined: not set). */
  differ?: Record<string, { snyk: string | undefined; ours: string | undefined; why: string }>;
}

/** Variables only our chart sets, for every case. */
const OURS_ONLY: Record<string, string> = {
  BROKER_SCM_TYPE: "selects the template's accept rules and .env defaults; Snyk's chart does it with the image tag (snyk/broker:<scmType>)",
  BROKER_CLIENT_ID: 'stable per replica, so a restarted replica gets its dispatcher allocation back (HA)',
  BROKER_HA_MODE_ENABLED: 'set to "false" as well (Snyk sets it only when true): same meaning',
  PREFLIGHT_CHECKS_ENABLED: 'set to "true" as well (Snyk sets it only when false): same meaning',
  BROKER_CLIENT_DRAIN_GRACE_MS: 'the graceful drain on SIGTERM, an ha-broker setting',
};

const dispatcherOnlyWithHa = {
  snyk: 'https://api.snyk.io',
  ours: undefined,
  why: 'set only with high availability on: the client reads it only in HA mode',
};

const CASES: Case[] = [
  {
    values: 'snyk-github-com-values.yaml',
    scmType: 'github-com',
    snyk: { ...SNYK_COMMON, BROKER_TOKEN: TOKEN, GITHUB_TOKEN: 'ghp_exampletoken0000000000000000000000', BROKER_CLIENT_URL: '', ...ACCEPT_DEFAULTS },
    differ: {
      BROKER_CLIENT_URL: {
        snyk: '',
        ours: 'http://github-com-broker-service-rel.brokers.svc.cluster.local:8000',
        why: 'brokerClientUrl left empty: Snyk sets an empty URL, ours the shared Service in-cluster URL',
      },
      BROKER_DISPATCHER_BASE_URL: dispatcherOnlyWithHa,
    },
  },
  {
    values: 'snyk-github-com-ha-values.yaml',
    scmType: 'github-com',
    snyk: {
      ...SNYK_COMMON,
      BROKER_TOKEN: TOKEN,
      GITHUB_TOKEN: 'ghp_exampletoken0000000000000000000000',
      BROKER_CLIENT_URL: '',
      ...ACCEPT_DEFAULTS,
      BROKER_HA_MODE_ENABLED: 'true',
    },
    differ: {
      BROKER_CLIENT_URL: {
        snyk: '',
        ours: 'http://github-com-broker-service-rel.brokers.svc.cluster.local:8000',
        why: 'brokerClientUrl left empty: Snyk sets an empty URL, ours the shared Service in-cluster URL',
      },
    },
  },
  {
    values: 'snyk-gitlab-values.yaml',
    scmType: 'gitlab',
    snyk: {
      ...SNYK_COMMON,
      LOG_LEVEL: 'debug',
      BROKER_TOKEN: TOKEN,
      GITLAB_TOKEN: 'glpat-example000000000000',
      GITLAB_TOKEN_POOL: 'glpat-example000000000000,glpat-example111111111111',
      GITLAB: 'gitlab.example.internal',
      BROKER_CLIENT_URL: 'http://gitlab-broker-service-rel:8000',
      ...ACCEPT_DEFAULTS,
      BROKER_CLIENT_LOCATION: 'dc-1',
    },
    differ: { BROKER_DISPATCHER_BASE_URL: dispatcherOnlyWithHa },
  },
  {
    values: 'snyk-bitbucket-server-values.yaml',
    scmType: 'bitbucket-server',
    snyk: {
      ...SNYK_COMMON,
      BROKER_TOKEN: TOKEN,
      BROKER_CLIENT_URL: 'https://broker.example.internal',
      BITBUCKET_USERNAME: 'snyk-bot',
      BITBUCKET_PASSWORD: 'example-password',
      BITBUCKET: 'bitbucket.example.internal',
      BITBUCKET_API: 'bitbucket.example.internal/rest/api/1.0',
      HTTPS_PROXY: 'http://proxy.example.internal:3128',
      NO_PROXY: 'bitbucket.example.internal,localhost',
      CA_CERT: 'caCertFile',
      NODE_EXTRA_CA_CERTS: 'caCertFile',
      ...ACCEPT_DEFAULTS,
    },
    differ: { BROKER_DISPATCHER_BASE_URL: dispatcherOnlyWithHa },
  },
  {
    values: 'snyk-azure-repos-values.yaml',
    scmType: 'azure-repos',
    snyk: {
      ...SNYK_COMMON,
      BROKER_TOKEN: TOKEN,
      BROKER_CLIENT_URL: 'https://broker.example.com',
      AZURE_REPOS_TOKEN: 'example-azure-pat',
      AZURE_REPOS_ORG: 'example-org',
      AZURE_REPOS_HOST: 'dev.azure.com',
      ...ACCEPT_DEFAULTS,
      BROKER_HA_MODE_ENABLED: 'true',
    },
  },
  {
    values: 'snyk-nexus-values.yaml',
    scmType: 'nexus',
    snyk: {
      ...SNYK_COMMON,
      BROKER_TOKEN: TOKEN,
      BASE_NEXUS_URL: 'https://snyk:example-password@nexus.example.internal',
      NEXUS_URL: 'https://snyk:example-password@nexus.example.internal/repository',
      BROKER_CLIENT_VALIDATION_URL: 'https://snyk:example-password@nexus.example.internal/service/rest/v1/status/check',
      RES_BODY_URL_SUB: 'https://nexus.example.internal/repository',
    },
    differ: {
      BROKER_CLIENT_URL: {
        snyk: undefined,
        ours: 'http://nexus-broker-service-rel:8000',
        why: "Snyk's chart never sets BROKER_CLIENT_URL for nexus/nexus2 (it drops brokerClientUrl); ours passes it on, as for every type",
      },
      BROKER_DISPATCHER_BASE_URL: dispatcherOnlyWithHa,
    },
  },
];

function dataOf(obj: K8sObject): Record<string, string> {
  if (obj.kind === 'Secret') {
    return Object.fromEntries(Object.entries((obj.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  }
  return (obj.data ?? {}) as Record<string, string>;
}

/** The env of a rendered client: Secret references resolved; a value naming a mounted file becomes file:<content>. */
function resolvedEnv(workload: K8sObject, objs: K8sObject[]): Record<string, string> {
  const find = (kind: string, name: string) => {
    const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
    if (!o) throw new Error(`${workload.metadata.name} references ${kind} ${name}, which the chart did not render`);
    return o;
  };
  const files = new Map<string, string>();
  const spec = podSpecOf(workload);
  for (const m of (containerOf(workload).volumeMounts ?? []) as { name: string; mountPath: string }[]) {
    const vol = ((spec.volumes ?? []) as Record<string, any>[]).find((v) => v.name === m.name)!;
    const src = vol.secret ? dataOf(find('Secret', vol.secret.secretName)) : vol.configMap ? dataOf(find('ConfigMap', vol.configMap.name)) : undefined;
    if (!src) continue;
    for (const { key, path } of (vol.secret ?? vol.configMap).items ?? Object.keys(src).map((k) => ({ key: k, path: k }))) files.set(`${m.mountPath}/${path}`, src[key]!);
  }
  const out: Record<string, string> = {};
  for (const e of (containerOf(workload).env ?? []) as Record<string, any>[]) {
    assert.equal(out[e.name], undefined, `${e.name} is set twice`);
    let value: string;
    if (e.value !== undefined) value = String(e.value);
    else if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      const v = dataOf(find('Secret', ref.name))[ref.key];
      assert.ok(v !== undefined, `${e.name}: Secret ${ref.name} has no key ${ref.key}`);
      value = v;
    } else throw new Error(`${e.name}: unexpected source ${JSON.stringify(e.valueFrom)}`);
    out[e.name] = files.has(value) ? file(files.get(value)!) : value;
  }
  return out;
}

async function valuesOf(name: string): Promise<Record<string, any>> {
  return parseYaml(await readFile(join(chartDir, 'ci', name), 'utf8')) as Record<string, any>;
}

/** The expected table with references to values (CA_CERT: 'caCertFile') replaced by the file content. */
async function snykEnv(c: Case): Promise<Record<string, string>> {
  const values = await valuesOf(c.values);
  return Object.fromEntries(Object.entries(c.snyk).map(([k, v]) => [k, v === 'caCertFile' ? file(values.caCertFile) : v]));
}

function compare(c: Case, snyk: Record<string, string | undefined>, ours: Record<string, string | undefined>): string[] {
  const problems: string[] = [];
  const names = new Set([...Object.keys(snyk), ...Object.keys(ours), ...Object.keys(OURS_ONLY)]);
  for (const name of [...names].sort()) {
    const d = c.differ?.[name];
    if (d) {
      if (snyk[name] !== d.snyk) problems.push(`${name}: Snyk's value is ${JSON.stringify(snyk[name])}, the table of differences says ${JSON.stringify(d.snyk)}`);
      if (ours[name] !== d.ours) problems.push(`${name}: ours is ${JSON.stringify(ours[name])}, the table of differences says ${JSON.stringify(d.ours)}`);
    } else if (OURS_ONLY[name] !== undefined && snyk[name] === undefined) {
      if (ours[name] === undefined) problems.push(`${name}: ours does not set it`);
    } else if (snyk[name] !== ours[name]) {
      problems.push(`${name}: Snyk ${JSON.stringify(snyk[name])}, ours ${JSON.stringify(ours[name])}`);
    }
  }
  return problems;
}

function table(c: Case, snyk: Record<string, string | undefined>, ours: Record<string, string | undefined>): string {
  const show = (v: string | undefined) => (v === undefined ? '(unset)' : v.startsWith('file:') ? `file (${v.length - 5} bytes)` : JSON.stringify(v));
  const names = [...new Set([...Object.keys(snyk), ...Object.keys(ours)])].sort();
  return [`${c.values} (scmType ${c.scmType})`, ...names.map((n) => `  ${n.padEnd(40)} snyk=${show(snyk[n])}  ours=${show(ours[n])}${c.differ?.[n] ? `  [differs: ${c.differ[n]!.why}]` : OURS_ONLY[n] && snyk[n] === undefined ? '  [ours only]' : ''}`)].join('\n');
}

async function renderCase(c: Case): Promise<{ objs: K8sObject[]; envs: Record<string, string>[] }> {
  const objs = await render({ valuesFiles: [`ci/${c.values}`] });
  const deps = ofKind(objs, 'Deployment');
  assert.ok(deps.length >= 1);
  return { objs, envs: deps.map((d) => resolvedEnv(d, objs)) };
}

describe("a snyk-broker-helm values file gives each client the env Snyk's chart gives", () => {
  for (const c of CASES) {
    test(`${c.values}: variable by variable, differences only where listed`, async (t) => {
      const expected = await snykEnv(c);
      const { envs } = await renderCase(c);
      for (const ours of envs) {
        t.diagnostic(table(c, expected, ours));
        assert.deepEqual(compare(c, expected, ours), [], `env differs from snyk-broker-helm's for ${c.values}`);
        assert.equal(ours.BROKER_SCM_TYPE, c.scmType);
        assert.equal(ours.ACCEPT, undefined, 'no accept file given: the template rules must be used, so ACCEPT must not be set');
      }
      if (envs.length > 1) {
        const ids = new Set(envs.map((e) => e.BROKER_CLIENT_ID));
        assert.equal(ids.size, envs.length, 'every replica has its own BROKER_CLIENT_ID');
      }
    });
  }

  test('the comparison can fail: a changed value, a missing variable and an extra one are reported', () => {
    const c = CASES[0]!;
    const snyk = { ...c.snyk };
    const ours: Record<string, string> = { ...snyk, BROKER_SCM_TYPE: 'github-com', GITHUB_TOKEN: 'other', EXTRA: 'x', BROKER_CLIENT_URL: 'http://github-com-broker-service-rel.brokers.svc.cluster.local:8000' };
    delete ours.BROKER_DISPATCHER_BASE_URL;
    delete ours.ACCEPT_IAC;
    const problems = compare(c, snyk, ours);
    assert.ok(problems.some((p) => p.startsWith('GITHUB_TOKEN:')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('EXTRA:')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('ACCEPT_IAC:')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('BROKER_CLIENT_ID:')), problems.join('\n'));
  });
});

/** The template's .env, as snyk-broker ships it (what `broker init <type>` copies in Snyk's image). */
function templateEnvFile(scmType: string): string {
  return join(packageDir('snyk-broker'), 'dist', 'client-templates', scmType, '.env.sample');
}

/**
 * The environment snyk-broker's client ends up with when started with `env` in a directory holding the template's
 * .env (what Snyk's image does after `broker init <type>`): snyk-broker's loadBrokerConfig, run in a child.
 */
async function afterDotenv(env: Record<string, string>, envFile: string): Promise<Record<string, string>> {
  // snyk-broker's loader refuses to run without the config.default.json its npm tarball lacks.
  await ensureSnykBrokerConfig();
  const dir = await mkdtemp(join(tmpdir(), 'ha-broker-dotenv-'));
  try {
    await copyFile(envFile, join(dir, '.env'));
    const config = join(packageDir('snyk-broker'), 'dist', 'lib', 'hybrid-sdk', 'common', 'config', 'config.js');
    const script = `const c = require(${JSON.stringify(config)}); c.loadBrokerConfig().then(() => process.stdout.write(JSON.stringify(process.env)));`;
    const plain = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.startsWith('file:') ? `<${k} file>` : v]));
    const { stdout } = await execFileAsync(process.execPath, ['-e', script], { cwd: dir, env: plain, timeout: 30_000 });
    const out = JSON.parse(stdout) as Record<string, string>;
    // Back to the file form, so the comparison stays by content.
    for (const [k, v] of Object.entries(env)) if (v.startsWith('file:')) out[k] = v;
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Our client's effective environment for a pod's env: its own resolveClientEnv (preset .env, $VAR expansion). */
async function oursAfterPreset(env: Record<string, string>): Promise<Record<string, string>> {
  const dir = await mkdtemp(join(tmpdir(), 'ha-broker-preset-'));
  try {
    const resolved = await resolveClientEnv(env, dir);
    return Object.fromEntries(Object.entries(resolved.env).filter((e): e is [string, string] => e[1] !== undefined));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("with the template's .env applied (Snyk's image after `broker init`), the effective env is the same", () => {
  for (const c of CASES) {
    test(`${c.values}`, async (t) => {
      const snyk = await afterDotenv(await snykEnv(c), templateEnvFile(c.scmType));
      const { envs } = await renderCase(c);
      const ours = await oursAfterPreset(envs[0]!);
      // Where our client's preset differs from Snyk's image on purpose (see docs/migrating.md, "Snyk's images").
      const withImage: Case = {
        ...c,
        differ: {
          ...c.differ,
          ACCEPT: { snyk: 'accept.json', ours: undefined, why: "ours reads the template's accept file where it ships (BROKER_SCM_TYPE); Snyk's image has a copy at ./accept.json" },
          // The template's marker (BROKER_DOWNSTREAM_TYPE_GITHUB for github-com, ..._GITLAB, ...).
          [Object.keys(snyk).find((k) => k.startsWith('BROKER_DOWNSTREAM_TYPE_')) ?? 'BROKER_DOWNSTREAM_TYPE_']: {
            snyk: 'true',
            ours: undefined,
            why: "snyk-broker reads the template's type from it for its ACCEPT_* injection; ours from BROKER_SCM_TYPE",
          },
        },
      };
      t.diagnostic(table(withImage, snyk, ours));
      // The template's own defaults (GITHUB=github.com, BROKER_CLIENT_VALIDATION_URL=..., REMOVE_X_FORWARDED_HEADERS...)
      // must be there on both sides.
      assert.ok(Object.keys(snyk).length > Object.keys(c.snyk).length, 'the .env added nothing: the check would prove nothing');
      assert.deepEqual(compare(withImage, snyk, ours), []);
    });
  }
});
