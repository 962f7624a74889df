// `helm upgrade` of the HA chart that changes the image tag, run as processes (issue 16).
//
// Each HA replica is its own Deployment (maxSurge 1, maxUnavailable 0), so during a rollout the
// old pod and its replacement run side by side with ONE BROKER_CLIENT_ID. Kubernetes rolls the
// Deployments concurrently; per Deployment it starts the new pod, waits until it is Ready (it
// joins the shared Service), then terminates the old one: the pod leaves the Service's endpoints
// a little later (propagation), the preStop hook runs, then SIGTERM, SIGKILL after the grace.
// This file does exactly that with the rendered pods (kubelet.ts) against a dispatcher, two
// broker servers behind one URL and an origin (ha-cluster.ts), under mixed GET/POST load and a
// steady stream of webhooks, for 2 replicas, 2 -> 4, 4 replicas and 4 -> 2.
//
// Asserted per upgrade: no failed GET (and POST failures, if any, are clear); every webhook
// delivered, including one sent at each step of each replica's roll; the dispatcher holds a slot
// for every continuing client id, connected, at every sample (not lost), never more than one per
// id and no ids but the chart's (not doubled); after the upgrade exactly the new replicas' ids
// hold slots, each with its two tunnels listed; with 4 replicas a 5th client id is refused.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { hashToken } from '../../src/protocol/index.js';
import { HaCluster } from '../support/ha-cluster.js';
import { assertFaultGoal, describeLoadFailures, startSteadyLoad, summaryLine } from '../support/steady-load.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { repoRoot } from './deps.js';
import { envValue, ofKind, render, type K8sObject, type RenderOptions } from './helm.js';
import { planPod, readImageConfig, type ImageConfig, type PodPlan } from './kubelet.js';
import { Balancer, Proc, freePort, httpGet, waitFor } from './procs.js';
import { FAILURES } from '../../src/protocol/failures.js';

const CLI = join(repoRoot, 'dist', 'cli.js');
const NS = 'brokers';
const RELEASE = 'rel';
const FULL = `${RELEASE}-ha-broker`;
/** How long after a pod starts terminating it still gets traffic from the Service (endpoint propagation). */
const ENDPOINT_LAG_MS = 1000;

interface Pod {
  replica: number;
  tag: string;
  plan: PodPlan;
  proc: Proc;
  /** In the shared Service's endpoints. */
  inService: boolean;
}

interface Webhook {
  id: string;
  at: number;
  step?: string;
  status: number;
  detail: string;
}

interface TokenDoc {
  servers: Array<{ server_id: string; connections: Array<{ client_id: string; tunnels: number }> }>;
  allocations: Array<{ client_id: string; server_id: string; connected: boolean }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('helm upgrade of the HA chart (new image tag), run as processes', { timeout: 280_000 }, () => {
  let dir: string;
  let image: ImageConfig;
  let cluster: HaCluster;
  let sink: Server;
  let sinkUrl: string;
  const delivered = new Map<string, number>();
  let shared: Balancer;
  let acceptFile: string;
  const pods: Pod[] = [];
  const dns = new Map<string, string>();
  let replicas = 0;
  let objs: K8sObject[] = [];

  const renderOpts = (count: number, tag: string): RenderOptions => ({
    release: RELEASE,
    namespace: NS,
    set: {
      brokerToken: cluster.token,
      'highAvailabilityMode.enabled': true,
      replicaCount: count,
      'image.tag': tag,
      brokerServerUrl: cluster.sharedUrl,
      'highAvailabilityMode.dispatcherUrl': cluster.dispatcherUrl,
    },
    setFile: { accept: acceptFile },
  });

  const deploymentOf = (rendered: K8sObject[], replica: number) => rendered.find((o) => o.kind === 'Deployment' && o.metadata.name === `${FULL}-${replica}`)!;
  const idOf = (rendered: K8sObject[], replica: number) => envValue(deploymentOf(rendered, replica), 'BROKER_CLIENT_ID')!;
  const running = () => pods.filter((p) => p.proc.running);
  const syncEndpoints = () => {
    shared.endpoints = running()
      .filter((p) => p.inService)
      .map((p) => p.plan.hostPort);
  };
  const logsOf = (list: Pod[]) => list.map((p) => p.proc.logs(30)).join('\n');

  async function startPod(rendered: K8sObject[], replica: number, tag: string): Promise<Pod> {
    const plan = await planPod(deploymentOf(rendered, replica), rendered, { image, dns, hostPort: await freePort(), filesDir: join(dir, 'pods', tag) });
    const name = `${plan.name}@${tag}`;
    const proc = new Proc(name, plan.command, plan.args, { cwd: plan.cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ...plan.env } });
    const pod: Pod = { replica, tag, plan, proc, inService: false };
    pods.push(pod);
    return pod;
  }

  /** Ready (readiness probe) and then in the Service, as the endpoints controller does. */
  async function becomeReady(pod: Pod): Promise<void> {
    await waitFor(
      `${pod.proc.name} ready`,
      async () => {
        if (!pod.proc.running) throw new Error(`${pod.proc.name} exited: ${JSON.stringify(pod.proc.exitInfo)}`);
        return (await httpGet(`http://127.0.0.1:${pod.plan.hostPort}${pod.plan.readinessPath}`, 2000)).status === 200;
      },
      60_000,
      100,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${pod.proc.logs()}`);
    });
    pod.inService = true;
    syncEndpoints();
  }

  /**
   * Pod termination as the kubelet does it: the pod leaves the endpoints after ENDPOINT_LAG_MS,
   * meanwhile the preStop hook runs; then SIGTERM; SIGKILL when the grace period is over.
   * Resolves with a problem text, or undefined when the pod exited 0 in time.
   */
  async function terminate(pod: Pod, step: (name: string) => void): Promise<string | undefined> {
    const deadline = Date.now() + pod.plan.terminationGracePeriodSeconds * 1000;
    step('terminating');
    const leave = sleep(ENDPOINT_LAG_MS).then(() => {
      pod.inService = false;
      syncEndpoints();
    });
    const hook = pod.plan.preStop;
    if (hook) {
      if ('sleepSeconds' in hook) await sleep(hook.sleepSeconds * 1000);
      else {
        const p = new Proc(`${pod.proc.name}:preStop`, hook.command, hook.args, { cwd: pod.plan.cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ...pod.plan.env } });
        const r = await Promise.race([p.exited, sleep(Math.max(0, deadline - Date.now())).then(() => 'timeout' as const)]);
        await p.kill();
        if (r === 'timeout') return `${pod.proc.name}: preStop did not finish within the grace period`;
        if (r.code !== 0) return `${pod.proc.name}: preStop exited ${JSON.stringify(r)}\n${p.logs()}`;
      }
    }
    step('sigterm');
    pod.proc.signal('SIGTERM');
    const exit = await Promise.race([pod.proc.exited, sleep(Math.max(0, deadline - Date.now())).then(() => 'timeout' as const)]);
    await leave;
    pod.inService = false;
    syncEndpoints();
    step('exited');
    if (exit === 'timeout') {
      await pod.proc.kill();
      return `${pod.proc.name} did not exit within terminationGracePeriodSeconds\n${pod.proc.logs()}`;
    }
    if (exit.code !== 0) return `${pod.proc.name} exited ${JSON.stringify(exit)}\n${pod.proc.logs()}`;
    return undefined;
  }

  async function sendWebhook(list: Webhook[], step?: string): Promise<void> {
    const id = randomUUID();
    const at = Date.now();
    try {
      const r = await request(`http://127.0.0.1:${shared.port}/webhook/${id}`, {
        method: 'POST',
        body: JSON.stringify({ id }),
        headers: { 'content-type': 'application/json' },
        reset: true,
        headersTimeout: 20_000,
        bodyTimeout: 20_000,
      });
      const text = await r.body.text();
      list.push({ id, at, step, status: r.statusCode, detail: `${r.statusCode} ${String(r.headers['x-broker-failure'] ?? '')} ${text.slice(0, 150)}` });
    } catch (err) {
      list.push({ id, at, step, status: 0, detail: (err as Error).message });
    }
  }

  async function tokenDoc(): Promise<TokenDoc> {
    const r = await request(`${cluster.dispatcherUrl}/internal/tokens/${hashToken(cluster.token)}/connections`, { headersTimeout: 3000, bodyTimeout: 3000, reset: true });
    assert.equal(r.statusCode, 200);
    return ((await r.body.json()) as { data: { attributes: TokenDoc } }).data.attributes;
  }

  const tunnelsOf = (doc: TokenDoc, id: string) => doc.servers.reduce((n, s) => n + s.connections.filter((c) => c.client_id === id).reduce((m, c) => m + c.tunnels, 0), 0);

  /**
   * Applies the render for `count` replicas with image tag `tag` as `helm upgrade` would, under
   * load, webhooks and a dispatcher sampler; asserts the outcome.
   */
  async function upgrade(count: number, tag: string): Promise<string> {
    const next = await render(renderOpts(count, tag));
    assert.equal(ofKind(next, 'Deployment').length, count);
    const from = replicas;
    const continuing = Array.from({ length: Math.min(from, count) }, (_, i) => i);
    const chartIds = new Set([...Array.from({ length: from }, (_, i) => idOf(objs, i)), ...Array.from({ length: count }, (_, i) => idOf(next, i))]);
    for (const i of continuing) {
      assert.equal(idOf(next, i), idOf(objs, i), `replica ${i} keeps its client id across the upgrade`);
      assert.notDeepEqual(deploymentOf(next, i).spec.template, deploymentOf(objs, i).spec.template, `replica ${i}'s pod template changes, so it rolls`);
    }
    const continuingIds = continuing.map((i) => idOf(next, i));

    const load = startSteadyLoad(cluster, { rate: 25, deadlineMs: 45_000, path: `load-${tag}` });
    const webhooks: Webhook[] = [];
    const stepHooks: Promise<void>[] = [];
    let stopping = false;
    const webhookLoop = (async () => {
      while (!stopping) {
        await Promise.all([sendWebhook(webhooks), sleep(100)]);
      }
    })();
    const violations: string[] = [];
    let samples = 0;
    const sampler = (async () => {
      while (!stopping) {
        try {
          const doc = await tokenDoc();
          samples++;
          const ids = doc.allocations.map((a) => a.client_id);
          for (const id of continuingIds) {
            const a = doc.allocations.find((x) => x.client_id === id);
            if (!a) violations.push(`+${Date.now() - load.startedAt} ms: continuing client ${id} has no slot (${JSON.stringify(doc.allocations)})`);
            else if (!a.connected) violations.push(`+${Date.now() - load.startedAt} ms: continuing client ${id} is listed without a live tunnel`);
          }
          if (new Set(ids).size !== ids.length) violations.push(`an id holds two slots: ${ids.join(',')}`);
          const foreign = ids.filter((id) => !chartIds.has(id));
          if (foreign.length) violations.push(`slots held by ids the chart does not render: ${foreign.join(',')}`);
          if (ids.length > 4) violations.push(`${ids.length} slots held for one token`);
        } catch (err) {
          violations.push(`dispatcher view failed: ${(err as Error).message}`);
        }
        await sleep(100);
      }
    })();

    const problems: string[] = [];
    const stepsSeen: string[] = [];
    const step = (replica: number, what: string) => (name: string) => {
      const label = `replica ${replica} ${what}: ${name}`;
      stepsSeen.push(label);
      stepHooks.push(sendWebhook(webhooks, label));
    };
    let newPods: Pod[] = [];
    try {
      await waitFor('traffic before the upgrade', () => load.ok >= 40, 30_000, 50);
      const work: Promise<void>[] = [];
      for (let i = 0; i < Math.max(from, count); i++) {
        const old = running().find((p) => p.replica === i);
        // Deployments roll concurrently, a little apart.
        const stagger = sleep(Math.floor(Math.random() * 400));
        if (i < count) {
          work.push(
            stagger.then(async () => {
              const s = step(i, old ? 'roll' : 'create');
              s('new pod starting');
              const pod = await startPod(next, i, tag);
              newPods.push(pod);
              await becomeReady(pod);
              s('new pod ready');
              if (old) {
                const problem = await terminate(old, s);
                if (problem) problems.push(problem);
              }
            }),
          );
        } else if (old) {
          work.push(
            stagger.then(async () => {
              const problem = await terminate(old, step(i, 'delete'));
              if (problem) problems.push(problem);
            }),
          );
        }
      }
      await Promise.all(work);
      objs = next;
      replicas = count;

      // Right after the last old pod left (long before any 25 s ping could repair the registry):
      // exactly the new replicas' ids hold slots, each connected with its two tunnels.
      const want = Array.from({ length: count }, (_, i) => idOf(next, i)).sort();
      let last: TokenDoc | undefined;
      await waitFor(
        'the dispatcher to list exactly the new pods, each with 2 tunnels',
        async () => {
          last = await tokenDoc();
          const ids = last.allocations.map((a) => a.client_id).sort();
          return JSON.stringify(ids) === JSON.stringify(want) && last.allocations.every((a) => a.connected) && want.every((id) => tunnelsOf(last!, id) === 2);
        },
        5_000,
        100,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; last view: ${JSON.stringify(last)}\n${logsOf(newPods)}`);
      });
      // Traffic goes on through the new pods.
      const okBefore = load.ok;
      await waitFor('traffic after the upgrade', () => load.ok >= okBefore + 40, 30_000, 50);
    } finally {
      stopping = true;
      await Promise.all([webhookLoop, sampler, ...stepHooks, load.stop()]);
    }
    const report = await load.stop();

    assert.deepEqual(problems, [], problems.join('\n'));
    assert.ok(samples >= 10, `only ${samples} dispatcher samples`);
    assert.deepEqual(violations.slice(0, 10), [], `${violations.length} registry violations during the upgrade\n${logsOf(pods.filter((p) => p.replica < 2))}`);
    const failedGets = report.failed.filter((f) => f.method === 'GET');
    assert.equal(failedGets.length, 0, `failed GETs during the upgrade: ${describeLoadFailures(failedGets)}`);
    assertFaultGoal(report, (ok, message) => assert.ok(ok, message));
    assert.ok(report.byMethod.GET.ok >= 40 && report.byMethod.POST.ok >= 40, `too little load: ${JSON.stringify(report.byMethod)}`);

    const lost = webhooks.filter((w) => w.status !== 200 || delivered.get(w.id) !== 1);
    assert.deepEqual(
      lost.map((w) => `${w.step ?? 'stream'} +${w.at - load.startedAt} ms: ${w.detail} (delivered ${delivered.get(w.id) ?? 0}×)`),
      [],
      'webhooks not delivered exactly once during the upgrade',
    );
    const stepped = webhooks.filter((w) => w.step !== undefined);
    assert.equal(stepped.length, stepsSeen.length, 'one webhook per rollout step');
    for (const i of continuing) {
      for (const s of ['new pod starting', 'new pod ready', 'terminating', 'sigterm', 'exited']) {
        assert.ok(stepsSeen.includes(`replica ${i} roll: ${s}`), `replica ${i} went through step ${s}`);
      }
    }
    return `${summaryLine(`upgrade ${from}->${count}`, report, undefined)} webhooks=${webhooks.length} stepWebhooks=${stepped.length} registrySamples=${samples}`;
  }

  before(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
    dir = await mkdtemp(join(tmpdir(), 'ha-broker-rollout-'));
    image = await readImageConfig();
    // Webhook destination behind the broker servers: counts deliveries per id.
    sink = createServer((req, res) => {
      const id = (req.url ?? '').split('/')[2] ?? '';
      req.resume();
      req.on('end', () => {
        delivered.set(id, (delivered.get(id) ?? 0) + 1);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      });
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`;
    const serverAccept = await writeAcceptFile({ public: [{ method: 'any', path: '/*' }], private: [{ method: 'POST', path: '/webhook/*', origin: sinkUrl }] });
    cluster = new HaCluster({ servers: 2, originDelayMs: 20, serverEnv: { ACCEPT: serverAccept } });
    await cluster.start();
    acceptFile = join(dir, 'accept.json');
    await writeFile(
      acceptFile,
      JSON.stringify({
        private: [{ method: 'any', path: '/*', origin: cluster.origin.url }],
        public: [{ method: 'POST', path: '/webhook/*' }],
      }),
    );
    shared = new Balancer();
    await shared.start();
    // Cluster DNS: every Service of the release reaches the shared balancer (the pods' env only
    // names the shared one, as BROKER_CLIENT_URL).
    for (const svc of ofKind(await render(renderOpts(4, 'dns')), 'Service')) {
      for (const host of [`${svc.metadata.name}.${NS}.svc.cluster.local`, `${svc.metadata.name}.${NS}.svc`]) dns.set(`${host}:${svc.spec.ports[0].port}`, `127.0.0.1:${shared.port}`);
    }
  });

  after(async () => {
    await Promise.all(pods.map((p) => p.proc.kill()));
    const output = cluster ? await cluster.stop() : '';
    await shared?.stop();
    if (sink) {
      sink.closeAllConnections();
      await new Promise<void>((resolve) => sink.close(() => resolve()));
    }
    if (dir) await rm(dir, { recursive: true, force: true });
    assert.ok(!output.includes(cluster.token), 'the token appears in process output');
  });

  test('install with 2 replicas: both clients hold a slot and relay', async () => {
    objs = await render(renderOpts(2, 'v1'));
    const started = [await startPod(objs, 0, 'v1'), await startPod(objs, 1, 'v1')];
    await Promise.all(started.map((p) => becomeReady(p)));
    replicas = 2;
    const want = [idOf(objs, 0), idOf(objs, 1)].sort();
    await waitFor('both clients allocated and connected', async () => {
      const doc = await tokenDoc();
      return JSON.stringify(doc.allocations.filter((a) => a.connected).map((a) => a.client_id).sort()) === JSON.stringify(want);
    }, 20_000, 100);
  });

  test('upgrade (new tag), 2 replicas: nothing lost', async (t) => {
    t.diagnostic(await upgrade(2, 'v2'));
  });

  test('upgrade (new tag) and 2 -> 4 replicas: nothing lost', async (t) => {
    t.diagnostic(await upgrade(4, 'v3'));
  });

  test('upgrade (new tag), 4 replicas: nothing lost, and a 5th client id is refused', async (t) => {
    t.diagnostic(await upgrade(4, 'v4'));
    const r = await request(`${cluster.dispatcherUrl}/hidden/broker/${hashToken(cluster.token)}/connections/${randomUUID()}?version=2022-12-01%7Eexperimental`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.api+json' },
      body: JSON.stringify({ data: { attributes: { deployment_location: 'test' } } }),
      reset: true,
    });
    const text = await r.body.text();
    assert.equal(r.statusCode, 429, `a 5th client got ${r.statusCode}: ${text}`);
    assert.equal(r.headers['x-broker-failure'], FAILURES.MAX_CLIENTS_PER_TOKEN.reason);
  });

  test('upgrade (new tag) and 4 -> 2 replicas: nothing lost, the removed ids free their slots', async (t) => {
    t.diagnostic(await upgrade(2, 'v5'));
  });
});
