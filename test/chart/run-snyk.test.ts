// Snyk's documented install, run: `helm install --set brokerToken=… --set scmToken=…` (scmType github-com by
// default, no accept file), with high availability off and on. Each rendered Deployment becomes a process
// (kubelet.ts) against a local `broker server` (and `broker dispatcher` with HA). The client must load Snyk's
// github-com accept template and its .env defaults from BROKER_SCM_TYPE alone:
// * it becomes ready (a tunnel to the server is open; with HA, after a dispatcher allocation);
// * a request outside the template's rules (DELETE /not-a-github-api/at/all) is refused by the client's filter (401);
// * a request the template allows (GET /user) leaves for the template's origin, https://${GITHUB_API}, with
//   GITHUB_API=api.github.com from the template's .env: the pods' egress goes through a proxy (the test's stand-in
//   for the cluster network) that records the CONNECT target and refuses it, so nothing leaves the machine.
// The values are only the two tokens; the "cluster network" routes Snyk's public URLs (https://broker.snyk.io,
// https://api.snyk.io) to the local server and dispatcher, as kubelet.ts routes Service names.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './deps.js';
import { ofKind, render, type K8sObject } from './helm.js';
import { planPod, readImageConfig, type ImageConfig } from './kubelet.js';
import { Proc, freePort, httpGet, waitFor } from './procs.js';

const CLI = join(repoRoot, 'dist', 'cli.js');
// The client side of BROKER_SCM_TYPE (Snyk's templates shipped in dist/client-templates, the .env defaults) comes
// with branch i13-client; until the build has it, these tests are skipped with that reason (never silently).
const TEMPLATES = join(repoRoot, 'dist', 'client-templates', 'github-com');
const skip = existsSync(TEMPLATES) ? false : `needs the client's BROKER_SCM_TYPE support (branch i13-client): ${TEMPLATES} is missing`;
const TOKEN = randomUUID();
const GITHUB_TOKEN = 'ghp_exampletoken0000000000000000000000';

/** An egress proxy that records CONNECT targets and refuses them all. */
async function refusingProxy(): Promise<{ port: number; connects: string[]; close: () => Promise<void> }> {
  const connects: string[] = [];
  const server: NetServer = createNetServer((socket) => {
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const m = /^(\S+) (\S+) HTTP/.exec(head);
      connects.push(m ? `${m[1]} ${m[2]}` : head.split('\r\n')[0]!);
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connects,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

for (const haOn of [false, true]) {
  describe(`scmType github-com with only brokerToken and scmToken, HA ${haOn ? 'on' : 'off'}, run as processes`, { timeout: 180_000, skip }, () => {
    const procs: Proc[] = [];
    let dir: string;
    let image: ImageConfig;
    let serverPort: number;
    let proxy: Awaited<ReturnType<typeof refusingProxy>>;
    let objs: K8sObject[];
    const dns = new Map<string, string>();
    const clientProcs: { name: string; proc: Proc; hostPort: number; readiness: string }[] = [];
    const allLogs = () => procs.map((p) => p.logs(40)).join('\n');

    before(async () => {
      if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
      dir = await mkdtemp(join(tmpdir(), 'ha-broker-run-snyk-'));
      image = await readImageConfig();
      proxy = await refusingProxy();
      const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LOG_LEVEL: 'info' };
      let dispatcherPort: number | undefined;
      if (haOn) {
        dispatcherPort = await freePort();
        const dispatcher = new Proc('dispatcher', process.execPath, [CLI, 'dispatcher'], { cwd: repoRoot, env: { ...base, PORT: String(dispatcherPort) } });
        procs.push(dispatcher);
        await waitFor('the dispatcher', async () => {
          if (!dispatcher.running) throw new Error(`dispatcher exited\n${dispatcher.logs()}`);
          return (await httpGet(`http://127.0.0.1:${dispatcherPort}/healthcheck`, 1_000)).status === 200;
        });
      }
      serverPort = await freePort();
      const serverAccept = join(dir, 'server-accept.json');
      await writeFile(serverAccept, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [] }));
      const server = new Proc('server', process.execPath, [CLI, 'server'], {
        cwd: repoRoot,
        env: {
          ...base,
          PORT: String(serverPort),
          ACCEPT: serverAccept,
          ...(dispatcherPort ? { DISPATCHER_URL: `http://127.0.0.1:${dispatcherPort}`, BROKER_SERVER_ID: '0', BROKER_SERVER_PEER_URL: `http://127.0.0.1:${serverPort}`, HOSTNAME: 'broker-server-0' } : {}),
        },
      });
      procs.push(server);
      await waitFor('the broker server', async () => {
        if (!server.running) throw new Error(`server exited\n${server.logs()}`);
        return (await httpGet(`http://127.0.0.1:${serverPort}/healthcheck`, 1_000)).status === 200;
      });
      // The "cluster network": Snyk's public endpoints lead to the local server and dispatcher.
      dns.set('https://broker.snyk.io', `http://127.0.0.1:${serverPort}`);
      if (dispatcherPort) dns.set('https://api.snyk.io', `http://127.0.0.1:${dispatcherPort}`);
    });

    after(async () => {
      await Promise.all(procs.map((p) => p.kill()));
      await proxy?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test('renders from the two tokens alone and every client becomes ready', async () => {
      objs = await render({ set: { brokerToken: TOKEN, scmToken: GITHUB_TOKEN, ...(haOn ? { 'highAvailabilityMode.enabled': true } : {}) } });
      const deployments = ofKind(objs, 'Deployment');
      assert.equal(deployments.length, haOn ? 2 : 1);
      assert.equal(ofKind(objs, 'ConfigMap').length, 0, 'no accept file is rendered');
      for (const d of deployments) {
        const hostPort = await freePort();
        const plan = await planPod(d, objs, { image, dns, hostPort, filesDir: join(dir, 'pods') });
        assert.equal(plan.env.BROKER_SCM_TYPE, 'github-com');
        assert.equal(plan.env.ACCEPT, undefined);
        assert.equal(plan.env.GITHUB_TOKEN, GITHUB_TOKEN);
        const proc = new Proc(plan.name, plan.command, plan.args, {
          // A private working directory: no accept.json or .env of the repository's is picked up.
          cwd: join(dir, 'pods', plan.name),
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(dir, 'pods', plan.name), ...plan.env, HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` },
        });
        procs.push(proc);
        clientProcs.push({ name: plan.name, proc, hostPort, readiness: plan.readinessPath });
      }
      await Promise.all(
        clientProcs.map((c) =>
          Promise.race([
            waitFor(`${c.name} to be ready`, async () => c.proc.running && (await httpGet(`http://127.0.0.1:${c.hostPort}${c.readiness}`, 2_000)).status === 200, 60_000, 200),
            c.proc.exited.then((exit) => {
              throw new Error(`${c.name} exited ${JSON.stringify(exit)}\n${c.proc.logs()}`);
            }),
          ]),
        ),
      );
      if (haOn) for (const c of clientProcs) assert.ok(c.proc.hasLog(/received server id/), `${c.name} got no dispatcher allocation\n${c.proc.logs()}`);
    });

    test("the github-com template's rules apply: a request outside them is refused by the client", async () => {
      assert.ok(clientProcs.length > 0 && clientProcs.every((c) => c.proc.running), 'the clients are not running (see the first test)');
      const res = await fetch(`http://127.0.0.1:${serverPort}/broker/${TOKEN}/not-a-github-api/at/all`, { method: 'DELETE', signal: AbortSignal.timeout(15_000) });
      const body = await res.text();
      assert.equal(res.status, 401, `${res.status} ${body}\n${allLogs()}`);
      assert.match(body, /FILTER_BLOCKED|blocked/i);
    });

    test('a request the template allows goes to https://${GITHUB_API} with the .env default api.github.com', async () => {
      assert.ok(clientProcs.length > 0 && clientProcs.every((c) => c.proc.running), 'the clients are not running (see the first test)');
      const before = proxy.connects.length;
      const res = await fetch(`http://127.0.0.1:${serverPort}/broker/${TOKEN}/user`, { signal: AbortSignal.timeout(30_000) });
      const body = await res.text();
      assert.notEqual(res.status, 401, `the client refused an allowed request: ${body}`);
      assert.ok(res.status >= 500, `the proxy refuses every CONNECT, so the relay must fail upstream: ${res.status} ${body}`);
      assert.ok(
        proxy.connects.slice(before).some((c) => c === 'CONNECT api.github.com:443'),
        `no CONNECT to api.github.com:443 (seen: ${proxy.connects.join(', ')})\n${allLogs()}`,
      );
    });
  });
}
