// A stand-in for the kubelet and cluster DNS: turns a rendered Deployment into a local process
// with the same command and environment the pod would have.
//
// * command: the image's ENTRYPOINT (read from the Dockerfile's final stage) + the container args;
//   `node` is this Node binary and paths under the image's WORKDIR (/app) are the repository,
//   which has the same layout (dist/, node_modules/, package.json);
// * environment: the image's ENV + envFrom + the container's env, with secretRef/configMapRef and
//   secretKeyRef/configMapKeyRef taken from the rendered Secret/ConfigMap;
// * volumes: configMap/secret/emptyDir mounts are written to a private directory (a subPath mount is
//   that one file), and env values naming a mount path point there instead;
// * network: every pod has its own IP in a cluster; here each pod gets its own host port instead
//   (PORT, which the chart sets to the container port), and `host:port` names of Services and
//   external hosts are rewritten to 127.0.0.1 ports, as cluster DNS + kube-proxy would route them.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot } from './deps.js';
import { containerOf, podSpecOf, type K8sObject } from './helm.js';

export interface ImageConfig {
  entrypoint: string[];
  cmd: string[];
  env: Record<string, string>;
  workdir: string;
  user: string;
}

/** Stages of a Dockerfile: name (if any), base, and instructions (continuations joined). */
export function parseDockerfile(text: string): { name?: string; from: string; lines: string[] }[] {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: { name?: string; from: string; lines: string[] }[] = [];
  for (const l of lines) {
    const m = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(l);
    if (m) stages.push({ from: m[1]!, name: m[2], lines: [] });
    else stages[stages.length - 1]?.lines.push(l);
  }
  return stages;
}

/**
 * The image config (ENTRYPOINT, CMD, ENV, WORKDIR, USER) of a stage of the Dockerfile, following
 * its chain of FROM <stage>; default: the last stage (the default build target).
 */
export async function readImageConfig(dockerfile = join(repoRoot, 'Dockerfile'), target?: string): Promise<ImageConfig> {
  const stages = parseDockerfile(await readFile(dockerfile, 'utf8'));
  const chain: { lines: string[] }[] = [];
  let stage = target ? stages.find((s) => s.name === target) : stages[stages.length - 1];
  if (!stage) throw new Error(`the Dockerfile has no stage ${target ?? '(none)'}`);
  for (;;) {
    chain.unshift(stage);
    const parent = stages.find((s) => s.name !== undefined && s.name === stage!.from);
    if (!parent) break;
    stage = parent;
  }
  const cfg: ImageConfig = { entrypoint: [], cmd: [], env: {}, workdir: '/', user: '' };
  for (const l of chain.flatMap((s) => s.lines)) {
    const m = /^(\w+)\s+(.*)$/.exec(l);
    if (!m) continue;
    const instr = m[1]!.toUpperCase();
    const rest = m[2]!;
    switch (instr) {
      case 'ENTRYPOINT':
        cfg.entrypoint = JSON.parse(rest) as string[];
        break;
      case 'CMD':
        cfg.cmd = JSON.parse(rest) as string[];
        break;
      case 'WORKDIR':
        cfg.workdir = rest.trim();
        break;
      case 'USER':
        cfg.user = rest.trim();
        break;
      case 'ENV':
        // KEY=value pairs; a double-quoted value may hold spaces (NODE_OPTIONS with two flags).
        for (const m of rest.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
          cfg.env[m[1]!] = m[2]!.startsWith('"') ? m[2]!.slice(1, -1).replace(/\\(.)/g, '$1') : m[2]!;
        }
        break;
    }
  }
  if (cfg.entrypoint.length === 0) throw new Error('the image has no ENTRYPOINT');
  return cfg;
}

export interface PodPlan {
  name: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  hostPort: number;
  readinessPath: string;
  livenessPath: string;
  terminationGracePeriodSeconds: number;
  labels: Record<string, string>;
  /** Container mount path -> the local directory (or file, for a subPath mount) standing in for it. */
  mounts: Record<string, string>;
  /**
   * The container's preStop hook as a local command (exec: argv mapped like the container's
   * command; sleep: `{ sleepSeconds }`), or undefined when there is none.
   */
  preStop?: { command: string; args: string[] } | { sleepSeconds: number };
}

/** Replaces every `host:port` key of dns by its value (longest names first). */
export function applyDns(value: string, dns: Map<string, string>): string {
  let out = value;
  for (const [from, to] of [...dns].sort((a, b) => b[0].length - a[0].length)) out = out.split(from).join(to);
  return out;
}

function findObject(objs: K8sObject[], kind: string, name: string): K8sObject {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`the pod references ${kind} ${name}, which the chart did not render`);
  return o;
}

function dataOf(obj: K8sObject): Record<string, string> {
  if (obj.kind === 'Secret') {
    return Object.fromEntries(Object.entries((obj.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  }
  return (obj.data ?? {}) as Record<string, string>;
}

/** Builds the process of a rendered Deployment (or Pod): files are written under filesDir. */
export async function planPod(
  workload: K8sObject,
  objs: K8sObject[],
  opts: { image: ImageConfig; dns: Map<string, string>; hostPort: number; filesDir: string },
): Promise<PodPlan> {
  const spec = podSpecOf(workload);
  const c = containerOf(workload);
  const podDir = join(opts.filesDir, workload.metadata.name);

  // Volumes -> directories.
  const mounts = new Map<string, string>();
  for (const m of (c.volumeMounts ?? []) as { name: string; mountPath: string; subPath?: string }[]) {
    const vol = ((spec.volumes ?? []) as Record<string, any>[]).find((v) => v.name === m.name);
    if (!vol) throw new Error(`volumeMount ${m.name} has no volume`);
    const dir = join(podDir, m.name);
    await mkdir(dir, { recursive: true });
    let data: Record<string, string> | undefined;
    let items: { key: string; path: string }[] | undefined;
    if (vol.configMap) {
      data = dataOf(findObject(objs, 'ConfigMap', vol.configMap.name));
      items = vol.configMap.items;
    } else if (vol.secret) {
      data = dataOf(findObject(objs, 'Secret', vol.secret.secretName));
      items = vol.secret.items;
    } else if (!vol.emptyDir) {
      throw new Error(`volume ${m.name}: only configMap, secret and emptyDir are supported here`);
    }
    if (data) {
      for (const { key, path } of items ?? Object.keys(data).map((k) => ({ key: k, path: k }))) {
        if (data[key] === undefined) throw new Error(`volume ${m.name}: key ${key} is not in the rendered object`);
        await writeFile(join(dir, path), data[key]!);
      }
    }
    if (m.subPath !== undefined && m.subPath !== '') {
      // One file (or directory) of the volume at the mount path.
      if (data && data[m.subPath] === undefined && !(items ?? []).some((i) => i.path === m.subPath)) {
        throw new Error(`volumeMount ${m.name}: subPath ${m.subPath} is not in the volume`);
      }
      mounts.set(m.mountPath.replace(/\/$/, ''), join(dir, m.subPath));
    } else mounts.set(m.mountPath.replace(/\/$/, ''), dir);
  }
  const mapPath = (v: string): string => {
    for (const [mountPath, dir] of mounts) {
      if (v === mountPath || v.startsWith(`${mountPath}/`)) return dir + v.slice(mountPath.length);
    }
    return v;
  };

  // Environment: image ENV, then envFrom (each source in order), then the container's env in order, as the kubelet does.
  const env: Record<string, string> = { ...opts.image.env };
  for (const src of (c.envFrom ?? []) as Record<string, any>[]) {
    const ref = src.secretRef ?? src.configMapRef;
    if (!ref) throw new Error(`envFrom: unsupported source ${JSON.stringify(src)}`);
    const data = dataOf(findObject(objs, src.secretRef ? 'Secret' : 'ConfigMap', ref.name));
    for (const [k, v] of Object.entries(data)) env[`${src.prefix ?? ''}${k}`] = mapPath(applyDns(v, opts.dns));
  }
  for (const e of (c.env ?? []) as Record<string, any>[]) {
    let value: string;
    if (e.value !== undefined) value = String(e.value);
    else if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      value = dataOf(findObject(objs, 'Secret', ref.name))[ref.key] ?? '';
      if (value === '') throw new Error(`env ${e.name}: Secret ${ref.name} has no key ${ref.key}`);
    } else if (e.valueFrom?.configMapKeyRef) {
      const ref = e.valueFrom.configMapKeyRef;
      value = dataOf(findObject(objs, 'ConfigMap', ref.name))[ref.key] ?? '';
    } else throw new Error(`env ${e.name}: unsupported source ${JSON.stringify(e.valueFrom)}`);
    env[e.name] = mapPath(applyDns(value, opts.dns));
  }

  // Network: the container port becomes this pod's host port.
  const httpPort = ((c.ports ?? []) as { name?: string; containerPort: number }[]).find((p) => p.name === 'http');
  if (!httpPort) throw new Error(`${workload.metadata.name}: no container port named http`);
  if (env.PORT !== String(httpPort.containerPort)) {
    throw new Error(`${workload.metadata.name}: PORT=${env.PORT} is not the container port ${httpPort.containerPort}`);
  }
  env.PORT = String(opts.hostPort);

  // Command: ENTRYPOINT + args (or CMD when the pod gives no args).
  const toHost = (arg: string): string => {
    const wd = opts.image.workdir.replace(/\/$/, '');
    return arg === wd || arg.startsWith(`${wd}/`) ? join(repoRoot, arg.slice(wd.length)) : arg;
  };
  const argv = [...((c.command as string[] | undefined) ?? opts.image.entrypoint), ...((c.args as string[] | undefined) ?? opts.image.cmd)];
  const [cmd, ...rest] = argv;
  const command = cmd === 'node' ? process.execPath : toHost(cmd!);

  const probePath = (probe: Record<string, any> | undefined, kind: string): string => {
    const get = probe?.httpGet;
    if (!get) throw new Error(`${workload.metadata.name}: no ${kind} httpGet probe`);
    if (get.port !== 'http' && get.port !== httpPort.containerPort) throw new Error(`${kind} probe is not on the http port`);
    return get.path as string;
  };

  const hook = (c.lifecycle as Record<string, any> | undefined)?.preStop as Record<string, any> | undefined;
  let preStop: PodPlan['preStop'];
  if (hook?.exec) {
    const [hc, ...hargs] = hook.exec.command as string[];
    preStop = { command: hc === 'node' ? process.execPath : toHost(hc!), args: hargs.map(toHost) };
  } else if (hook?.sleep) {
    preStop = { sleepSeconds: Number(hook.sleep.seconds) };
  } else if (hook) {
    throw new Error(`${workload.metadata.name}: only exec and sleep preStop hooks are supported here`);
  }

  return {
    name: workload.metadata.name,
    command,
    args: rest.map(toHost),
    env,
    cwd: toHost(opts.image.workdir),
    hostPort: opts.hostPort,
    readinessPath: probePath(c.readinessProbe, 'readiness'),
    livenessPath: probePath(c.livenessProbe, 'liveness'),
    terminationGracePeriodSeconds: Number(spec.terminationGracePeriodSeconds ?? 30),
    labels: (workload.kind === 'Pod' ? workload.metadata.labels : workload.spec.template.metadata.labels) ?? {},
    mounts: Object.fromEntries(mounts),
    ...(preStop ? { preStop } : {}),
  };
}
