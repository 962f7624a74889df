// Validation of rendered objects against the Kubernetes API, offline, in two independent ways:
//
// 1. kubernetes-models' validate(): the OpenAPI schema of each kind (types, required fields,
//    enums, formats). It accepts unknown fields, so a misspelt field would pass it; therefore
// 2. a TypeScript type check of every object as an object literal of the model's interface
//    (IDeployment, IService, ...): excess property checks reject any field the API does not
//    have, at any depth, and the types catch wrong scalars and missing required fields.
//
// Both use the npm packages kubernetes-models@4.5.0 (Kubernetes 1.31 API; Node >= 14) and, for the
// ServiceMonitor CRD, @kubernetes-models/prometheus-operator@4.4.4.
import ts from 'typescript';
import { join } from 'node:path';
import { importDep, resolveDep } from './deps.js';
import type { K8sObject } from './helm.js';

/** Module of the model class and interface of an apiVersion/kind. */
function modelFor(apiVersion: string, kind: string): { module: string; spec: string } {
  let module: string;
  if (apiVersion === 'monitoring.coreos.com/v1') module = `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1`;
  else if (/^[a-z0-9.]+\/v[0-9a-z]+$/.test(apiVersion) || /^v[0-9a-z]+$/.test(apiVersion)) module = `kubernetes-models/${apiVersion}`;
  else throw new Error(`no schema for apiVersion ${apiVersion}`);
  return { module, spec: `${module}/${kind}` };
}

function label(o: K8sObject): string {
  return `${o?.kind}/${o?.metadata?.name}`;
}

/** Runtime OpenAPI schema validation; returns one message per invalid object. */
export async function validateWithModels(objs: K8sObject[]): Promise<string[]> {
  const errors: string[] = [];
  for (const o of objs) {
    let Model: (new (data: unknown) => { validate(): void }) | undefined;
    try {
      const { spec } = modelFor(o.apiVersion, o.kind);
      type Ctor = new (data: unknown) => { validate(): void };
      const mod = await importDep<Record<string, Ctor> & { default?: Record<string, Ctor> }>(spec);
      // CommonJS modules: the named export may only be visible on the default export.
      Model = mod[o.kind] ?? mod.default?.[o.kind];
      if (!Model) throw new Error(`module has no export ${o.kind}`);
    } catch (err) {
      errors.push(`${label(o)}: no Kubernetes schema (${(err as Error).message})`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (err) {
      errors.push(`${label(o)}: ${(err as Error).message}`);
    }
  }
  return errors;
}

/** Strict structural check with the TypeScript compiler; returns one message per diagnostic. */
export function validateWithTypes(objs: K8sObject[]): string[] {
  const errors: string[] = [];
  const imports: string[] = [];
  const decls: string[] = [];
  objs.forEach((o, i) => {
    let module: string;
    try {
      module = modelFor(o.apiVersion, o.kind).module;
    } catch (err) {
      errors.push(`${label(o)}: ${(err as Error).message}`);
      return;
    }
    imports.push(`import type { I${o.kind} as T${i} } from ${JSON.stringify(`${module}/${o.kind}`)};`);
    decls.push(`export const o${i}: T${i} = ${JSON.stringify(o, null, 2)};`);
  });
  const source = [...imports, ...decls].join('\n');
  const srcLines = source.split('\n');
  // The virtual file sits where the models are installed so module resolution finds them.
  const baseDir = resolveDep('kubernetes-models').baseDir;
  const fileName = join(baseDir, '__rendered_chart_check__.mts');
  const options: ts.CompilerOptions = {
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
    lib: ['lib.es2022.d.ts'],
  };
  const host = ts.createCompilerHost(options, true);
  const orig = { getSourceFile: host.getSourceFile, fileExists: host.fileExists, readFile: host.readFile };
  host.getSourceFile = (name, lang, onError, create) =>
    name === fileName ? ts.createSourceFile(name, source, lang, true) : orig.getSourceFile.call(host, name, lang, onError, create);
  host.fileExists = (name) => name === fileName || orig.fileExists.call(host, name);
  host.readFile = (name) => (name === fileName ? source : orig.readFile.call(host, name));
  const program = ts.createProgram([fileName], options, host);
  const sf = program.getSourceFile(fileName);
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!(d.file && d.file.fileName === fileName && d.start !== undefined && sf)) {
      errors.push(`typescript: ${msg}`);
      continue;
    }
    const { line } = sf.getLineAndCharacterOfPosition(d.start);
    // The object a line belongs to: the last `export const oN` at or above it.
    let owner = 'imports';
    for (let l = line; l >= 0; l--) {
      const m = /^export const o(\d+):/.exec(srcLines[l] ?? '');
      if (m) {
        owner = label(objs[Number(m[1])]!);
        break;
      }
    }
    errors.push(`${owner}: ${msg} (at: ${(srcLines[line] ?? '').trim()})`);
  }
  return errors;
}

/** Both validations; returns all problems (empty when every object is valid). */
export async function validateObjects(objs: K8sObject[]): Promise<string[]> {
  return [...(await validateWithModels(objs)), ...validateWithTypes(objs)];
}
