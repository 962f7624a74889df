// Runs the rendered chart: the HA render with 3 replicas becomes 3 client processes (command and
// env exactly as rendered; see kubelet.ts) against a local `broker dispatcher`, `broker server`
// and origin. All 3 clients must get a dispatcher allocation and relay requests. Then the render
// with 2 replicas is applied as `helm upgrade` would (only replica 2's objects go away: its
// process gets SIGTERM and leaves the shared Service) while requests keep flowing: none may fail.
// Finally replica 2 comes back (scale to 3 again) and gets its allocation back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './deps.js';
import { ofKind, podLabelsOf, render, selects, type K8sObject, type RenderOptions } from './helm.js';
import { planPod, readImageConfig, type ImageConfig, type PodPlan } from './kubelet.js';
import { Balancer, Proc, RecordingProxy, freePort, httpGet, ownerOfConnection, waitFor } from './procs.js';

const CLI = join(repoRoot, 'dist', 'cli.js');
const NS = 'brokers';
const RELEASE = 'rel';
const FULL = `${RELEASE}-ha-broker`;
/** The shared Service: snyk-broker-helm's name, "<scmType>-broker-service-<release>". */
const SHARED = `github-com-broker-service-${RELEASE}`;
const TOKEN = randomUUID();
const HASHED = createHash('sha256').update(TOKEN).digest('hex');
// External names the values use; the "cluster DNS" below routes them to local ports.
const SERVER_HOST = 'broker-server.snyk.svc:7341';
const DISPATCHER_HOST = 'dispatcher.snyk.svc:8080';
const SCM_HOST = 'git.corp.svc:8080';

const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;

describe('the rendered HA chart, run as processes', { timeout: 240_000 }, () => {
  const procs: Proc[] = [];
  let dir: string;
  let image: ImageConfig;
  let dispatcher: Proc;
  let server: Proc;
  let serverPort: number;
  let dispatcherProxy: RecordingProxy;
  let origin: Server;
  let originPort: number;
  let shared: Balancer;
  let render3: K8sObject[];
  let acceptFile: string;
  const pods = new Map<string, { plan: PodPlan; proc: Proc }>();
  /** Service DNS name -> host port of its endpoint (per-replica) or of its balancer (shared). */
  const dns = new Map<string, string>();

  const renderOpts = (replicas: number): RenderOptions => ({
    release: RELEASE,
    namespace: NS,
    set: {
      brokerToken: TOKEN,
      'highAvailabilityMode.enabled': true,
      replicaCount: replicas,
      brokerServerUrl: `http://${SERVER_HOST}`,
      'highAvailabilityMode.dispatcherUrl': `http://${DISPATCHER_HOST}`,
      'extraEnv[0].name': 'SCM_HOST',
      'extraEnv[0].value': SCM_HOST,
    },
    setFile: { accept: acceptFile },
  });

  const clientPids = () => [...pods.values()].filter((p) => p.proc.running).map((p) => p.proc.pid);
  const allLogs = () => [dispatcher, server, ...procs.filter((p) => p !== dispatcher && p !== server)].filter(Boolean).map((p) => p.logs(40)).join('\n');

  async function startPod(workload: K8sObject, objs: K8sObject[], hostPort?: number): Promise<{ plan: PodPlan; proc: Proc }> {
    hostPort ??= await freePort();
    const plan = await planPod(workload, objs, { image, dns, hostPort, filesDir: join(dir, 'pods') });
    const leftover = Object.entries(plan.env).filter(([, v]) => /\.svc(\.cluster\.local)?(:\d+)?\b/.test(v));
    assert.deepEqual(leftover, [], 'env names a host the test cannot route');
    const proc = new Proc(plan.name, plan.command, plan.args, {
      cwd: plan.cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(dir, 'pods', plan.name), ...plan.env },
    });
    procs.push(proc);
    const pod = { plan, proc };
    pods.set(plan.name, pod);
    return pod;
  }

  async function waitReady(pod: { plan: PodPlan; proc: Proc }): Promise<void> {
    await waitFor(
      `${pod.plan.name} to be ready (GET ${pod.plan.readinessPath})`,
      async () => {
        if (!pod.proc.running) throw new Error(`${pod.plan.name} exited: ${JSON.stringify(pod.proc.exitInfo)}\n${pod.proc.logs()}`);
        return (await httpGet(`http://127.0.0.1:${pod.plan.hostPort}${pod.plan.readinessPath}`, 2_000)).status === 200;
      },
      60_000,
      200,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${pod.proc.logs()}`);
    });
  }

  /** Endpoints of a Service: host ports of the running pods it selects. */
  function endpointsOf(svc: K8sObject): number[] {
    return [...pods.values()].filter((p) => p.proc.running && selects(svc.spec.selector, p.plan.labels)).map((p) => p.plan.hostPort);
  }

  async function relay(path: string, post?: string): Promise<{ status: number; body: string }> {
    if (post === undefined) return httpGet(`http://127.0.0.1:${serverPort}/broker/${TOKEN}${path}`, 15_000);
    const res = await fetch(`http://127.0.0.1:${serverPort}/broker/${TOKEN}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: post,
      signal: AbortSignal.timeout(15_000),
    });
    return { status: res.status, body: await res.text() };
  }

  before(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
    dir = await mkdtemp(join(tmpdir(), 'ha-broker-run-'));
    image = await readImageConfig();
    acceptFile = join(dir, 'accept.json');
    await writeFile(
      acceptFile,
      JSON.stringify({
        private: [{ '//': 'everything to the internal Git server', method: 'any', path: '/*', origin: 'http://${SCM_HOST}' }],
        public: [{ '//': 'webhooks', method: 'any', path: '/webhook/*' }],
      }),
    );

    // Origin: answers with the path and records which client process made the request.
    origin = createServer((req, res) => {
      // Which client process made this request (the owner of the connection's other end).
      const pid = ownerOfConnection(req.socket.remotePort ?? 0, originPort, clientPids());
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        // A little latency, so a replica being stopped has requests in flight.
        setTimeout(() => {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ path: req.url, method: req.method, body, pid }));
        }, 20);
      });
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    originPort = (origin.address() as AddressInfo).port;

    const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LOG_LEVEL: 'info' };
    const dispatcherPort = await freePort();
    dispatcher = new Proc('dispatcher', process.execPath, [CLI, 'dispatcher'], { cwd: repoRoot, env: { ...base, PORT: String(dispatcherPort) } });
    procs.push(dispatcher);
    await waitFor('the dispatcher', async () => {
      if (!dispatcher.running) throw new Error(`dispatcher exited\n${dispatcher.logs()}`);
      return (await httpGet(`http://127.0.0.1:${dispatcherPort}/healthcheck`, 1_000)).status === 200;
    });
    dispatcherProxy = new RecordingProxy(dispatcherPort);
    await dispatcherProxy.start();

    serverPort = await freePort();
    const serverAccept = join(dir, 'server-accept.json');
    await writeFile(serverAccept, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [] }));
    server = new Proc('server', process.execPath, [CLI, 'server'], {
      cwd: repoRoot,
      env: {
        ...base,
        PORT: String(serverPort),
        ACCEPT: serverAccept,
        DISPATCHER_URL: `http://127.0.0.1:${dispatcherPort}`,
        BROKER_SERVER_ID: '0',
        BROKER_SERVER_PEER_URL: `http://127.0.0.1:${serverPort}`,
        HOSTNAME: 'broker-server-0',
      },
    });
    procs.push(server);
    await waitFor('the broker server', async () => {
      if (!server.running) throw new Error(`server exited\n${server.logs()}`);
      return (await httpGet(`http://127.0.0.1:${serverPort}/healthcheck`, 1_000)).status === 200;
    });

    dns.set(SERVER_HOST, `127.0.0.1:${serverPort}`);
    dns.set(DISPATCHER_HOST, `127.0.0.1:${dispatcherProxy.port}`);
    dns.set(SCM_HOST, `127.0.0.1:${originPort}`);
    shared = new Balancer();
    await shared.start();
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    await shared?.stop();
    await dispatcherProxy?.stop();
    if (origin) {
      origin.closeAllConnections();
      await new Promise<void>((resolve) => origin.close(() => resolve()));
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('3 replicas: every rendered client starts, becomes ready and gets a dispatcher allocation', async () => {
    render3 = await render(renderOpts(3));
    const deployments = ofKind(render3, 'Deployment');
    assert.equal(deployments.length, 3);
    // Cluster DNS for the rendered Services: per-replica ones reach their pod, the shared one the balancer.
    const ports = new Map<string, number>();
    for (const d of deployments) ports.set(d.metadata.name, await freePort());
    for (const svc of ofKind(render3, 'Service')) {
      const selected = deployments.filter((d) => selects(svc.spec.selector, podLabelsOf(d)));
      const target = selected.length === 1 ? ports.get(selected[0]!.metadata.name)! : shared.port;
      for (const host of [`${svc.metadata.name}.${NS}.svc.cluster.local`, `${svc.metadata.name}.${NS}.svc`]) {
        dns.set(`${host}:${svc.spec.ports[0].port}`, `127.0.0.1:${target}`);
      }
    }
    const started: { plan: PodPlan; proc: Proc }[] = [];
    for (const d of deployments) started.push(await startPod(d, render3, ports.get(d.metadata.name)));
    await Promise.all(started.map((p) => waitReady(p)));
    shared.endpoints = endpointsOf(ofKind(render3, 'Service').find((s) => s.metadata.name === SHARED)!);
    assert.equal(shared.endpoints.length, 3);

    for (const pod of started) {
      assert.equal((await httpGet(`http://127.0.0.1:${pod.plan.hostPort}${pod.plan.livenessPath}`)).status, 200, `${pod.plan.name} liveness`);
      assert.equal(pod.plan.env.BROKER_HA_MODE_ENABLED, 'true');
      const id = pod.plan.env.BROKER_CLIENT_ID!;
      const allocations = dispatcherProxy.records.filter(
        (r) => r.method === 'POST' && r.url.startsWith(`/hidden/broker/${HASHED}/connections/${id}?`),
      );
      assert.ok(allocations.length >= 1, `${pod.plan.name} (client id ${id}) asked the dispatcher for no allocation\n${allLogs()}`);
      const last = allocations[allocations.length - 1]!;
      assert.ok(last.status >= 200 && last.status < 300, `allocation of ${pod.plan.name} answered ${last.status}: ${last.responseBody}`);
      assert.equal((JSON.parse(last.responseBody) as any).data.attributes.server_id, '0');
    }
    // The server sees the three clients of the token, by their rendered ids.
    const status = await waitFor('the server to list the 3 clients', async () => {
      const r = await httpGet(`http://127.0.0.1:${serverPort}/connections-status`);
      const entry = (JSON.parse(r.body) as { hashedIdentifier: string; brokerClientIds: string[] }[]).find((e) => e.hashedIdentifier === HASHED);
      return entry && started.every((p) => entry.brokerClientIds.includes(p.plan.env.BROKER_CLIENT_ID!)) ? entry : undefined;
    }, 15_000);
    assert.ok(status);
    // The shared Service reaches the clients.
    assert.equal((await httpGet(`http://127.0.0.1:${shared.port}${started[0]!.plan.livenessPath}`)).status, 200);
  });

  test('every one of the 3 clients relays requests from the broker server to the origin', async () => {
    const want = new Set(clientPids());
    assert.equal(want.size, 3);
    const seen = new Set<number>();
    let n = 0;
    await waitFor(
      'requests relayed by all 3 clients',
      async () => {
        const batch = await Promise.all([0, 1, 2].map(() => relay(`/repos/r${n++}`)));
        for (const r of batch) {
          assert.equal(r.status, 200, `relay failed: ${r.status} ${r.body}\n${allLogs()}`);
          const body = JSON.parse(r.body) as { path: string; pid?: number };
          assert.match(body.path, /^\/repos\/r\d+$/);
          if (body.pid !== undefined) seen.add(body.pid);
        }
        if (n > 300) throw new Error(`after ${n} requests only ${seen.size} clients relayed`);
        return [...want].every((p) => seen.has(p));
      },
      60_000,
      0,
    );
  });

  test('helm upgrade to 2 replicas: replica 2 goes away, no request fails meanwhile', async () => {
    const render2 = await render(renderOpts(2));
    const keys2 = new Set(render2.map(key));
    const removed = render3.filter((o) => !keys2.has(key(o)));
    assert.deepEqual(removed.map(key).sort(), [`Deployment/${FULL}-2`, `Service/${FULL}-2`]);
    const before3 = new Map(render3.map((o) => [key(o), o]));
    for (const o of render2) assert.deepEqual(o, before3.get(key(o)), `${key(o)} would change (and roll) on the upgrade`);

    const victim = pods.get(`${FULL}-2`)!;
    const results: { ok: boolean; detail: string; at: number; pid?: number }[] = [];
    let stop = false;
    let i = 0;
    const worker = async () => {
      while (!stop) {
        const n = i++;
        const path = `/load/${n}`;
        // Half POSTs: a broker server may retry an idempotent GET on another tunnel, never a POST,
        // so these fail unless the stopping client finishes what it took on.
        const post = n % 2 === 1 ? JSON.stringify({ n, pad: 'x'.repeat(2048) }) : undefined;
        try {
          const r = await relay(path, post);
          const body = r.status === 200 ? (JSON.parse(r.body) as { path: string; body: string; pid?: number }) : undefined;
          const ok = r.status === 200 && body?.path === path && body.body === (post ?? '');
          results.push({ ok, detail: `${r.status} ${r.body.slice(0, 200)}`, at: Date.now(), pid: body?.pid });
        } catch (err) {
          results.push({ ok: false, detail: String((err as Error).message), at: Date.now() });
        }
      }
    };
    const workers = [worker(), worker(), worker(), worker()];
    try {
      await waitFor('traffic before the change', () => results.filter((r) => r.ok).length >= 40, 30_000, 20);
      // Apply the diff: the Deployment's pod is terminated (SIGTERM, then SIGKILL after the grace
      // period) and leaves the endpoints of the shared Service; its own Service is deleted.
      const sharedSvc = render2.find((o) => o.kind === 'Service' && o.metadata.name === SHARED)!;
      victim.proc.signal('SIGTERM');
      shared.endpoints = endpointsOf(sharedSvc).filter((p) => p !== victim.plan.hostPort);
      const graceMs = victim.plan.terminationGracePeriodSeconds * 1000;
      const exit = await Promise.race([victim.proc.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs))]);
      if (exit === 'timeout') await victim.proc.kill();
      assert.notEqual(exit, 'timeout', `replica 2 did not exit within terminationGracePeriodSeconds (${graceMs} ms)\n${victim.proc.logs()}`);
      assert.equal((exit as { code: number | null }).code, 0, `replica 2 exited with ${JSON.stringify(exit)}\n${victim.proc.logs()}`);
      const exitedAt = Date.now();
      await waitFor('traffic after the change', () => results.filter((r) => r.ok && r.at > exitedAt).length >= 40, 30_000, 20);
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    const failed = results.filter((r) => !r.ok);
    assert.equal(failed.length, 0, `${failed.length} of ${results.length} requests failed during the scale-down: ${failed.slice(0, 5).map((f) => f.detail).join(' | ')}\n${allLogs()}`);
    const survivors = new Set(clientPids());
    assert.equal(survivors.size, 2);
    for (const r of results.slice(-20)) if (r.pid !== undefined) assert.ok(survivors.has(r.pid), 'a request was served by the removed replica after it exited');
    assert.deepEqual(shared.endpoints.sort(), endpointsOf(render2.find((o) => o.kind === 'Service' && o.metadata.name === SHARED)!).sort());
  });

  test('helm upgrade back to 3: replica 2 returns with the same client id and gets its allocation back', async () => {
    const again = await render(renderOpts(3));
    const d2 = again.find((o) => o.kind === 'Deployment' && o.metadata.name === `${FULL}-2`)!;
    assert.deepEqual(d2, render3.find((o) => o.kind === 'Deployment' && o.metadata.name === `${FULL}-2`));
    const before = dispatcherProxy.records.length;
    const pod = await startPod(d2, again);
    await waitReady(pod);
    const id = pod.plan.env.BROKER_CLIENT_ID!;
    const alloc = dispatcherProxy.records.slice(before).filter((r) => r.method === 'POST' && r.url.startsWith(`/hidden/broker/${HASHED}/connections/${id}?`));
    assert.ok(alloc.length >= 1, `the returning replica asked for no allocation\n${pod.proc.logs()}`);
    const last = alloc[alloc.length - 1]!;
    assert.ok(last.status >= 200 && last.status < 300, `allocation answered ${last.status}: ${last.responseBody}`);
    assert.equal((JSON.parse(last.responseBody) as any).data.attributes.server_id, '0');
    shared.endpoints = endpointsOf(again.find((o) => o.kind === 'Service' && o.metadata.name === SHARED)!);
    assert.equal(shared.endpoints.length, 3);
  });
});
