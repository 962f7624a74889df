// Universal Broker mode, run: ci/universal-values.yaml (a snyk-universal-broker-helm values file) rendered
// and its client container run as a local process (kubelet.ts: envFrom of the platform and credential
// Secrets, the .pem credential mounted as a file), against the fake Snyk API (OAuth, the connections
// list) and a `broker server` of ours. The deployment's connection comes up with its two tunnels and
// relays with the token the values' credentialReferences supplied; a connection referencing a variable
// the values do not supply stays off.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { chartDir, repoRoot } from './deps.js';
import { ofKind, render, type K8sObject } from './helm.js';
import { planPod, readImageConfig, type PodPlan } from './kubelet.js';
import { Proc, freePort, httpGet, waitFor } from './procs.js';
import { startFakeSnykApi, type FakeSnykApi } from '../support/fake-snyk-api.js';
import { startOrigin, type Origin } from '../support/origin.js';

const CLI = join(repoRoot, 'dist', 'cli.js');
const VALUES = join(chartDir, 'ci', 'universal-values.yaml');
// Names the rendered env uses; the "cluster DNS" routes them to local ports.
const SERVER_HOST = 'broker-server.snyk.svc:7341';
const API_HOST = 'api.snyk.svc:8080';

interface UniversalValues {
  deploymentId: string;
  clientId: string;
  clientSecret: string;
  credentialReferences: Record<string, string>;
}

describe('the rendered Universal Broker client, run as a process', { timeout: 120_000 }, () => {
  const procs: Proc[] = [];
  let dir: string;
  let values: UniversalValues;
  let api: FakeSnykApi;
  let github: Origin;
  let server: Proc;
  let serverPort: number;
  let objs: K8sObject[];
  let plan: PodPlan;
  let client: Proc;
  const identifier = randomUUID();
  const offIdentifier = randomUUID();

  const tunnels = async (id: string): Promise<number> => {
    const r = await httpGet(`http://127.0.0.1:${serverPort}/connection-status/${id}`, 2_000).catch(() => ({ status: 0, body: '' }));
    if (r.status !== 200) return 0;
    return (JSON.parse(r.body) as { clients: { state: string }[] }).clients.filter((c) => c.state === 'ready').length;
  };

  before(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
    dir = await mkdtemp(join(tmpdir(), 'ha-broker-run-ub-'));
    values = parseYaml(await readFile(VALUES, 'utf8')) as UniversalValues;
    github = await startOrigin();
    // The deployment of the values file, as the Snyk platform holds it: its connections reference
    // credentials by ${ENV_NAME}; the values supply MY_GITHUB_TOKEN, nothing supplies NOT_IN_THE_VALUES.
    api = await startFakeSnykApi({
      deploymentId: values.deploymentId,
      clientId: values.clientId,
      clientSecret: values.clientSecret,
      connections: [
        { name: 'corp github', type: 'github', identifier, required: { github_token: '${MY_GITHUB_TOKEN}', github_api: `127.0.0.1:${new URL(github.url).port}` } },
        { name: 'half set up', type: 'gitlab', identifier: offIdentifier, required: { gitlab_token: '${NOT_IN_THE_VALUES}', gitlab: 'gitlab.invalid' } },
      ],
    });

    serverPort = await freePort();
    const serverAccept = join(dir, 'server-accept.json');
    await writeFile(serverAccept, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [] }));
    server = new Proc('server', process.execPath, [CLI, 'server'], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LOG_LEVEL: 'info', PORT: String(serverPort), ACCEPT: serverAccept, BROKER_SERVER_HOST: '127.0.0.1' },
    });
    procs.push(server);
    await waitFor('the broker server', async () => {
      if (!server.running) throw new Error(`server exited\n${server.logs()}`);
      return (await httpGet(`http://127.0.0.1:${serverPort}/healthcheck`, 1_000)).status === 200;
    });

    // The values file unchanged; only the endpoints are pointed at the local stand-ins (as a test
    // environment's brokerServerUrl/brokerDispatcherUrl would), and the fake origin speaks plain http.
    objs = await render({
      valuesFiles: [VALUES],
      set: { brokerServerUrl: `http://${SERVER_HOST}`, brokerDispatcherUrl: `http://${API_HOST}`, insecureDownstream: true },
    });
    const deployments = ofKind(objs, 'Deployment');
    assert.equal(deployments.length, 1);
    const dns = new Map([
      [SERVER_HOST, `127.0.0.1:${serverPort}`],
      [API_HOST, new URL(api.url).host],
    ]);
    plan = await planPod(deployments[0]!, objs, { image: await readImageConfig(), dns, hostPort: await freePort(), filesDir: join(dir, 'pods') });
    client = new Proc(plan.name, plan.command, plan.args, { cwd: plan.cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(dir, 'pods', plan.name), ...plan.env } });
    procs.push(client);
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    await Promise.all([github?.close(), api?.close()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the env comes from the chart: Universal mode, platform credentials and credential references via envFrom', () => {
    assert.equal(plan.env.UNIVERSAL_BROKER_ENABLED, 'true');
    assert.equal(plan.env.DEPLOYMENT_ID, values.deploymentId);
    assert.equal(plan.env.CLIENT_ID, values.clientId);
    assert.equal(plan.env.CLIENT_SECRET, values.clientSecret);
    assert.equal(plan.env.MY_GITHUB_TOKEN, values.credentialReferences.MY_GITHUB_TOKEN);
    assert.equal(plan.env.BROKER_DISPATCHER_BASE_URL, api.url);
  });

  test('the .pem credential reference is a file at privateKeyMountPath', async () => {
    const file = plan.mounts['/home/node/github_app_key.pem'];
    assert.ok(file, `no mount at /home/node/github_app_key.pem: ${JSON.stringify(plan.mounts)}`);
    assert.equal(await readFile(file, 'utf8'), values.credentialReferences['github_app_key.pem']);
  });

  test("the deployment's connection comes up with its two tunnels and relays with the referenced token", async () => {
    await waitFor(
      'the connection to have 2 ready tunnels at the server',
      async () => {
        if (!client.running) throw new Error(`client exited: ${JSON.stringify(client.exitInfo)}\n${client.logs()}`);
        return (await tunnels(identifier)) === 2;
      },
      60_000,
      200,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${client.logs(60)}\n${server.logs(20)}`);
    });
    // OAuth with the values' client credentials, then the deployment's connections list.
    assert.ok(api.calls.some((c) => c.path === '/oauth2/token'));
    assert.ok(api.calls.some((c) => c.path === `/hidden/brokers/deployments/${values.deploymentId}/connections`));
    // The client is ready (its readiness probe's path) once a tunnel is open.
    assert.equal((await httpGet(`http://127.0.0.1:${plan.hostPort}${plan.readinessPath}`)).status, 200);

    const r = await httpGet(`http://127.0.0.1:${serverPort}/broker/${identifier}/user/repos`, 15_000);
    assert.equal(r.status, 200, r.body);
    const seen = github.seen.at(-1)!;
    assert.equal(seen.url, '/user/repos');
    const token = values.credentialReferences.MY_GITHUB_TOKEN!;
    const headers = JSON.stringify(seen.headers);
    assert.ok(headers.includes(token) || headers.includes(Buffer.from(`${token}:`).toString('base64')), 'the credential reference reached GitHub');
  });

  test('a connection whose reference the values do not supply stays off, and the log says why', async () => {
    assert.equal(await tunnels(offIdentifier), 0);
    assert.match(client.logs(200), /NOT_IN_THE_VALUES/);
    assert.ok(!client.logs(500).includes(values.credentialReferences.MY_GITHUB_TOKEN!), 'the token is in a log line');
  });
});
