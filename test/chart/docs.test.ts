// values.yaml, values.schema.json and the chart README agree: every value has a schema entry with
// a description, the schema describes no value that does not exist, and the README lists every
// value with its actual default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { chartDir } from './deps.js';

interface SchemaNode {
  type?: string | string[];
  description?: string;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  /** snyk-broker-helm values this chart refuses or that have no effect: typed, not in values.yaml. */
  'x-snyk-broker-helm'?: 'refused' | 'no effect';
  /** The same for snyk-universal-broker-helm values (Universal Broker mode). */
  'x-snyk-universal-broker-helm'?: 'refused' | 'no effect';
}

type Marker = 'x-snyk-broker-helm' | 'x-snyk-universal-broker-helm';
const isMarked = (node: SchemaNode) => Boolean(node['x-snyk-broker-helm'] ?? node['x-snyk-universal-broker-helm']);

/** snyk-broker-helm values the schema accepts only to refuse them or to say they do nothing, with their paths. */
function snykOnly(schema: SchemaNode, marker: Marker = 'x-snyk-broker-helm', prefix = ''): { path: string; node: SchemaNode }[] {
  const out: { path: string; node: SchemaNode }[] = [];
  for (const [key, node] of Object.entries(schema.properties ?? {})) {
    if (node[marker]) out.push({ path: `${prefix}${key}`, node });
    else if (node.properties && !isMarked(node)) out.push(...snykOnly(node, marker, `${prefix}${key}.`));
  }
  return out;
}

/** Chart-owned objects (closed schemas) are walked into; everything else is one documented value. */
function leaves(schema: SchemaNode, values: Record<string, unknown>, prefix = ''): { path: string; value: unknown; node: SchemaNode }[] {
  const out: { path: string; value: unknown; node: SchemaNode }[] = [];
  for (const [key, node] of Object.entries(schema.properties ?? {})) {
    if (key === 'global' || isMarked(node)) continue;
    const path = `${prefix}${key}`;
    const value = values?.[key];
    if (node.additionalProperties === false && node.properties) {
      out.push(...leaves(node, (value ?? {}) as Record<string, unknown>, `${path}.`));
    } else out.push({ path, value, node });
  }
  return out;
}

function valuePaths(values: Record<string, unknown>, schema: SchemaNode, prefix = ''): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    const path = `${prefix}${key}`;
    const node = schema.properties?.[key];
    if (!node) {
      out.push(path);
      continue;
    }
    if (node.additionalProperties === false && node.properties && value && typeof value === 'object') {
      out.push(...valuePaths(value as Record<string, unknown>, node, `${path}.`));
    } else out.push(path);
  }
  return out;
}

async function load() {
  const values = parseYaml(await readFile(join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>;
  const schema = JSON.parse(await readFile(join(chartDir, 'values.schema.json'), 'utf8')) as SchemaNode;
  const readme = await readFile(join(chartDir, 'README.md'), 'utf8');
  return { values, schema, readme };
}

test('the schema covers every value of values.yaml, with a description, and nothing else', async () => {
  const { values, schema } = await load();
  const documented = new Set(leaves(schema, values).map((l) => l.path));
  const present = valuePaths(values, schema);
  assert.deepEqual(present.filter((p) => !documented.has(p)), [], 'values without a schema entry');
  const presentSet = new Set(present);
  assert.deepEqual([...documented].filter((p) => !presentSet.has(p)), [], 'schema entries without a value in values.yaml');
  for (const l of leaves(schema, values)) {
    assert.ok(l.node.description && l.node.description.length > 3, `schema entry ${l.path} has no description`);
    assert.ok(l.node.type || (l.node as Record<string, unknown>).oneOf, `schema entry ${l.path} has no type`);
  }
  assert.equal(schema.additionalProperties, false, 'unknown top-level values must be rejected');
});

test('every snyk-broker-helm value the chart refuses or ignores is typed, says why, and is listed in the README', async () => {
  const { schema, readme } = await load();
  const marked = snykOnly(schema);
  assert.ok(marked.length >= 20, `only ${marked.length} marked values`);
  const start = readme.indexOf('\n## snyk-broker-helm values this chart refuses or ignores\n');
  assert.ok(start >= 0, 'README has no section on refused snyk-broker-helm values');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  for (const { path, node } of marked) {
    assert.ok(node.description && /snyk-broker-helm/.test(node.description), `${path}: the description must say what it was in snyk-broker-helm`);
    if (node['x-snyk-broker-helm'] === 'refused') assert.match(node.description!, /fails the install|install fails/, `${path}: must say that it fails the install`);
    else assert.match(node.description!, /no effect/, `${path}: must say it has no effect`);
    assert.ok(section.includes(`\`${path}\``), `README section lacks ${path}`);
  }
});

test('every snyk-universal-broker-helm value the chart refuses or ignores is typed, says why, and is listed in the README', async () => {
  const { schema, readme } = await load();
  const marked = snykOnly(schema, 'x-snyk-universal-broker-helm');
  assert.ok(marked.length >= 8, `only ${marked.length} marked values`);
  const start = readme.indexOf('\n## snyk-universal-broker-helm values this chart refuses or ignores\n');
  assert.ok(start >= 0, 'README has no section on refused snyk-universal-broker-helm values');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  for (const { path, node } of marked) {
    assert.ok(node.type, `${path}: untyped`);
    assert.ok(node.description && /snyk-universal-broker-helm/.test(node.description), `${path}: the description must say what it was in snyk-universal-broker-helm`);
    if (node['x-snyk-universal-broker-helm'] === 'refused') assert.match(node.description!, /fails the install|install fails/, `${path}: must say that it fails the install`);
    else assert.match(node.description!, /no effect/, `${path}: must say it has no effect`);
    assert.ok(section.includes(`\`${path}\``), `README section lacks ${path}`);
  }
});

test('the README lists every value with its default and meaning', async () => {
  const { values, schema, readme } = await load();
  const rows = new Map<string, { def: string; meaning: string }>();
  const start = readme.indexOf('\n## Values\n');
  assert.ok(start >= 0, 'README has no "## Values" section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  for (const line of section.split('\n')) {
    const m = /^\| `([A-Za-z0-9_.]+)` \| `(.*)` \| (.+) \|$/.exec(line);
    if (m) rows.set(m[1]!, { def: m[2]!, meaning: m[3]! });
  }
  for (const l of leaves(schema, values)) {
    const row = rows.get(l.path);
    assert.ok(row, `README has no row for ${l.path}`);
    assert.deepEqual(JSON.parse(row.def), l.value, `README default of ${l.path} differs from values.yaml`);
    assert.ok(row.meaning.trim().length > 3, `README row of ${l.path} has no meaning`);
  }
  const known = new Set(leaves(schema, values).map((l) => l.path));
  assert.deepEqual([...rows.keys()].filter((k) => !known.has(k)), [], 'README rows for values that do not exist');
  for (const name of [
    'highAvailabilityMode.enabled',
    'highAvailabilityMode.dispatcherUrl',
    'replicaCount',
    'region',
    'brokerServerUrl',
    'brokerClientUrl',
    'brokerToken',
    'existingSecret',
    'accept',
    'preflightChecks.enabled',
    'universalBroker.enabled',
    'deploymentId',
    'clientId',
    'clientSecret',
    'credentialReferences',
  ]) {
    assert.ok(rows.has(name), `the value ${name} users rely on is missing`);
  }
});

test('the README reports the measured image size', async () => {
  const { readme } = await load();
  assert.ok(/image size[^\n]*\d+(\.\d+)? ?(MB|MiB)/i.test(readme), 'the chart README does not state the measured image size');
});
