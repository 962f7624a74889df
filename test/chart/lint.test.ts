// helm lint --strict and yamllint on the chart, the ct configuration, and the NOTES shown after
// `helm install` (rendered by a client-side dry run against a stub API server that only answers
// discovery).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { chartDir, repoRoot } from './deps.js';
import { helm } from './helm.js';

const execFileAsync = promisify(execFile);
const lintConf = join(repoRoot, 'ci', 'lintconf.yaml');

async function ciValueFiles(): Promise<string[]> {
  return (await readdir(join(chartDir, 'ci'))).filter((f) => f.endsWith('-values.yaml')).sort();
}

async function yamllint(files: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await execFileAsync('yamllint', ['--strict', '-f', 'parsable', '-c', lintConf, ...files], { cwd: repoRoot });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new Error('yamllint is not installed: run scripts/install-system-deps.sh (Debian package yamllint)');
    return { code: typeof e.code === 'number' ? e.code : 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('helm lint --strict', () => {
  test('passes with the default values and with every ci/*-values.yaml', async () => {
    const runs: [string, string[]][] = [['(defaults)', []]];
    for (const f of await ciValueFiles()) runs.push([f, ['-f', join(chartDir, 'ci', f)]]);
    for (const [name, args] of runs) {
      const r = await helm(['lint', '--strict', chartDir, ...args]);
      assert.equal(r.code, 0, `helm lint --strict ${name} failed:\n${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  test('fails on a broken template (the check can fail)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ha-broker-chart-'));
    try {
      await cp(chartDir, join(dir, 'ha-broker'), { recursive: true });
      const svc = join(dir, 'ha-broker', 'templates', 'service.yaml');
      await writeFile(svc, (await readFile(svc, 'utf8')).replace('  ports:\n', '  ports:\n   - oops: [\n'));
      const r = await helm(['lint', '--strict', join(dir, 'ha-broker'), '-f', join(chartDir, 'ci', 'default-values.yaml')]);
      assert.notEqual(r.code, 0, 'helm lint accepted a broken template');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('yamllint', () => {
  test('Chart.yaml, values.yaml, the ci value sets and ci/*.yaml pass with ci/lintconf.yaml', async () => {
    const files = [
      join(chartDir, 'Chart.yaml'),
      join(chartDir, 'values.yaml'),
      ...(await ciValueFiles()).map((f) => join(chartDir, 'ci', f)),
      ...(await readdir(join(repoRoot, 'ci'))).filter((f) => f.endsWith('.yaml')).map((f) => join(repoRoot, 'ci', f)),
    ].map((f) => relative(repoRoot, f));
    const r = await yamllint(files);
    assert.equal(r.code, 0, `yamllint found problems:\n${r.out}`);
  });

  test('reports a badly formatted file (the check can fail)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ha-broker-yamllint-'));
    try {
      const bad = join(dir, 'bad-values.yaml');
      await writeFile(bad, 'a: yes\nb:   [1,2 ]\nc:\n    - x\nc: 2   \n');
      const r = await yamllint([bad]);
      assert.notEqual(r.code, 0, 'yamllint accepted a bad file');
      assert.match(r.out, /duplication of key|truthy|trailing-spaces/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('chart-testing configuration', () => {
  test('ci/ct.yaml points ct at the chart and the yamllint config', async () => {
    const ct = parseYaml(await readFile(join(repoRoot, 'ci', 'ct.yaml'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(ct['chart-dirs'], ['charts']);
    assert.equal(ct['lint-conf'], 'ci/lintconf.yaml');
    assert.equal(ct['validate-maintainers'], false);
    // ct uses <chart>/ci/*-values.yaml for both lint and install.
    assert.ok((await ciValueFiles()).length >= 6);
  });
});

describe('NOTES.txt', () => {
  let api: Server;
  let kubeconfig: string;
  let dir: string;

  before(async () => {
    // helm install --dry-run=client still asks the API server for its version and API groups.
    api = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      res.setHeader('content-type', 'application/json');
      const answers: Record<string, unknown> = {
        '/version': { major: '1', minor: '31', gitVersion: 'v1.31.0', platform: 'linux/amd64' },
        '/api': { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] },
        '/apis': { kind: 'APIGroupList', apiVersion: 'v1', groups: [] },
        '/api/v1': { kind: 'APIResourceList', groupVersion: 'v1', resources: [] },
      };
      const body = path ? answers[path] : undefined;
      if (body === undefined) {
        res.statusCode = 404;
        res.end('{}');
      } else res.end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    const port = (api.address() as { port: number }).port;
    dir = await mkdtemp(join(tmpdir(), 'ha-broker-notes-'));
    kubeconfig = join(dir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        `clusters: [{name: stub, cluster: {server: "http://127.0.0.1:${port}"}}]`,
        'users: [{name: stub, user: {}}]',
        'contexts: [{name: stub, context: {cluster: stub, user: stub}}]',
        'current-context: stub',
      ].join('\n'),
    );
    await writeFile(join(dir, 'releases.yaml'), '');
  });

  after(async () => {
    await new Promise<void>((resolve) => api.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  async function notes(values: string, set: string[] = []): Promise<string> {
    const r = await helm(
      ['install', 'rel', chartDir, '--namespace', 'brokers', '--dry-run=client', '-f', join(chartDir, 'ci', values), ...set.flatMap((s) => ['--set', s])],
      { KUBECONFIG: kubeconfig, HELM_DRIVER: 'memory', HELM_MEMORY_DRIVER_DATA: join(dir, 'releases.yaml') },
    );
    assert.equal(r.code, 0, `helm install --dry-run failed: ${r.stderr}`);
    const i = r.stdout.indexOf('NOTES:');
    assert.ok(i >= 0, 'no NOTES in the install output');
    return r.stdout.slice(i);
  }

  test('HA: tells how to check the HA log lines of every replica and how to run the preflight test', async () => {
    const text = await notes('ha-4-values.yaml');
    for (let i = 0; i < 4; i++) {
      assert.match(text, new RegExp(`kubectl -n brokers logs deploy/rel-ha-broker-${i} \\| grep -E 'checking for HA mode\\|received server id\\|connecting to broker server'`));
    }
    assert.match(text, /checking for HA mode \(enabled=true\)/);
    assert.match(text, /received server id/);
    assert.match(text, /helm test rel -n brokers --logs/);
    assert.match(text, /dispatcher https:\/\/api\.snyk\.io/);
  });

  test("a snyk-broker-helm values file: names the Service and the SCM template, and says Snyk's image is replaced", async () => {
    const text = await notes('snyk-all-keys-values.yaml');
    assert.match(text, /Service: +github-com-broker-service-rel:8000/);
    assert.match(text, /SCM type: +github-com \(Snyk's github-com accept template\)/);
    assert.match(text, /image\.repository is Snyk's image \(snyk\/broker\); this chart runs its own/);
    const own = await notes('default-values.yaml');
    assert.match(own, /SCM type: +github-com \(your accept rules\)/);
    assert.doesNotMatch(own, /Snyk's image/);
  });

  test('HA off: says how to turn it on', async () => {
    const text = await notes('default-values.yaml');
    assert.match(text, /--set highAvailabilityMode\.enabled=true/);
    assert.doesNotMatch(text, /checking for HA mode/);
  });
});
