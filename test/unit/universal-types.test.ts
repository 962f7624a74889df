// The Universal Broker type table (issue 20) against Snyk's own facts: its config.default.json
// (reference data beside the checkout; those tests skip without it) and the functions of the
// pinned snyk-broker package that read it (loaded from node_modules, always there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import {
  UNIVERSAL_TYPES,
  UNIVERSAL_TYPE_NAMES,
  COMMON_DEFAULTS,
  COMMON_REQUIRED,
  isUniversalType,
  universalType,
  determineFilterType,
  webhookTypeCandidates,
  selectWebhookType,
  defaultsFor,
  allowedContextKeys,
  type UniversalTypeName,
} from '../../src/config/universal-types.js';
import { isScmType, loadPreset } from '../../src/config/presets.js';
import { SNYK_BROKER_DATA_DIR, SNYK_BROKER_DIR } from '../support/paths.js';

interface SnykTypeBlock {
  default: Record<string, string>;
  required: Record<string, string>;
  validations?: unknown[];
}
interface SnykConfig {
  SUPPORTED_BROKER_TYPES: string[];
  CRA_COMPATIBLE_TYPES: string[];
  FILTER_RULES_PATHS: Record<string, string>;
  BROKER_CLIENT_CONFIGURATION: Record<string, SnykTypeBlock>;
}

const CONFIG_PATH = SNYK_BROKER_DATA_DIR && join(SNYK_BROKER_DATA_DIR, 'config.default.json');
const withData = { skip: CONFIG_PATH && existsSync(CONFIG_PATH) ? false : 'no snyk-broker-data config.default.json (../shared or SNYK_BROKER_DATA_DIR)' };
const snyk = (): SnykConfig => JSON.parse(readFileSync(CONFIG_PATH!, 'utf8')) as SnykConfig;
const upperKeys = (o: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(o).map(([k, v]) => [k.toUpperCase(), v]));

const require = createRequire(import.meta.url);
const HYBRID = join(SNYK_BROKER_DIR, 'dist', 'lib', 'hybrid-sdk');
const snykConfigModule = () =>
  require(join(HYBRID, 'common', 'config', 'config.js')) as { loadBrokerConfig: (local: object) => Promise<void>; setConfig: (c: object) => void };

test("the types are Snyk's SUPPORTED_BROKER_TYPES, in its order", withData, () => {
  assert.deepEqual(UNIVERSAL_TYPE_NAMES, snyk().SUPPORTED_BROKER_TYPES);
  assert.deepEqual(Object.keys(UNIVERSAL_TYPES), snyk().SUPPORTED_BROKER_TYPES);
  for (const n of UNIVERSAL_TYPE_NAMES) assert.equal(UNIVERSAL_TYPES[n].name, n);
});

test("each type's required keys, defaults (common block first) and validations are Snyk's", withData, () => {
  const { BROKER_CLIENT_CONFIGURATION: bcc } = snyk();
  assert.deepEqual(COMMON_DEFAULTS, upperKeys(bcc.common!.default));
  assert.deepEqual(COMMON_REQUIRED, Object.keys(bcc.common!.required).map((k) => k.toUpperCase()));
  for (const n of UNIVERSAL_TYPE_NAMES) {
    const block = bcc[n];
    assert.ok(block, `Snyk has a block for ${n}`);
    const ours = UNIVERSAL_TYPES[n];
    assert.deepEqual(ours.required, Object.keys(block.required).map((k) => k.toUpperCase()), `${n} required`);
    assert.deepEqual(ours.defaults, { ...upperKeys(bcc.common!.default), ...upperKeys(bcc.common!.required), ...upperKeys(block.default) }, `${n} defaults`);
    assert.deepEqual(ours.validations, block.validations ?? [], `${n} validations`);
  }
  // Snyk's container-registry blocks have no validations key at all ([inferred] its /systemcheck throws on them).
  const without = UNIVERSAL_TYPE_NAMES.filter((n) => bcc[n]!.validations === undefined);
  assert.deepEqual(without, UNIVERSAL_TYPE_NAMES.filter((n) => UNIVERSAL_TYPES[n].craCompatible));
});

test('the CRA-compatible types are CRA_COMPATIBLE_TYPES', withData, () => {
  const ours = UNIVERSAL_TYPE_NAMES.filter((n) => UNIVERSAL_TYPES[n].craCompatible);
  assert.deepEqual([...ours].sort(), [...snyk().CRA_COMPATIBLE_TYPES].sort());
});

test("FILTER_RULES_PATHS: each type's file, and a file for every filter type a connection can get", withData, () => {
  const { FILTER_RULES_PATHS: paths } = snyk();
  for (const n of UNIVERSAL_TYPE_NAMES) {
    assert.equal(paths[n], `defaultFilters/${UNIVERSAL_TYPES[n].snykFilters}.json`, n);
    assert.ok(existsSync(join(SNYK_BROKER_DATA_DIR!, paths[n])), `${paths[n]} exists`);
    for (const values of [{}, { JIRA_PAT: 'x' }, { BITBUCKET_PAT: 'x' }]) {
      const ft = determineFilterType(n, values);
      assert.ok(isUniversalType(ft), `${n} → ${ft} is a supported type`);
      assert.equal(paths[ft], `defaultFilters/${UNIVERSAL_TYPES[ft].snykFilters}.json`, `${n} → ${ft}`);
    }
  }
});

test("defaultsFor and allowedContextKeys equal the package's getConfigForType and getAllowedKeysForType", withData, async () => {
  for (const k of ['BROKER_SERVER_URL', 'BROKER_HEALTHCHECK_PATH', 'BROKER_CLIENT_URL']) delete process.env[k];
  const { loadBrokerConfig } = snykConfigModule();
  const uni = require(join(HYBRID, 'common', 'config', 'universal.js')) as {
    getConfigForType: (t: string) => Record<string, string>;
    getAllowedKeysForType: (t: string) => string[];
  };
  for (const url of [undefined, 'https://broker-client.example:8000']) {
    await loadBrokerConfig({ ...snyk(), UNIVERSAL_BROKER_ENABLED: 'true', ...(url ? { BROKER_CLIENT_URL: url } : {}) });
    for (const n of UNIVERSAL_TYPE_NAMES) {
      assert.deepEqual(defaultsFor(n, url), uni.getConfigForType(n), `${n} with BROKER_CLIENT_URL ${url}`);
      assert.deepEqual([...allowedContextKeys(n)].sort(), uni.getAllowedKeysForType(n).sort(), n);
    }
  }
  assert.equal(defaultsFor('jira', 'https://x:1').BROKER_CLIENT_URL, undefined, 'jira does not require BROKER_CLIENT_URL');
  assert.equal(defaultsFor('github', 'https://x:1').BROKER_CLIENT_URL, 'https://x:1');
});

test("determineFilterType is the package's", () => {
  const snykFt = (require(join(HYBRID, 'client', 'utils', 'filterSelection.js')) as { determineFilterType: (t: string, c: object) => string }).determineFilterType;
  const valueSets = [{}, { JIRA_PAT: 'p' }, { JIRA_PAT: '' }, { BITBUCKET_PAT: 'p' }, { JIRA_PAT: 'p', BITBUCKET_PAT: 'p' }, { JIRA_USERNAME: 'u', BITBUCKET_USERNAME: 'u' }];
  for (const type of [...UNIVERSAL_TYPE_NAMES, 'nexus2', 'unknown'])
    for (const v of valueSets) assert.equal(determineFilterType(type, v), snykFt(type, v), `${type} ${JSON.stringify(v)}`);
  assert.equal(determineFilterType('jira', { JIRA_PAT: '' }), 'jira-bearer-auth', 'the key decides, not its value');
  assert.equal(determineFilterType('bitbucket-server', { BITBUCKET_PAT: 'p' }), 'bitbucket-server-bearer-auth');
});

type Middleware = (req: object, res: object, next: () => void) => void;
/** What Snyk's middleware does with a local /webhook/<pathType>/ request: the chosen tunnel's type, or 401. */
function snykWebhookChoice(mw: Middleware, pathType: string, available: readonly string[]): string | number {
  let status = 0;
  const res = { locals: { websocketConnections: available.map((t) => ({ supportedIntegrationType: t })) } as Record<string, unknown>, status: (s: number) => ((status = s), { send: () => undefined }) };
  let chosen: string | number = 'next not called';
  mw({ path: `/webhook/${pathType}/abc`, requestId: 'r' }, res, () => (chosen = (res.locals.websocket as { supportedIntegrationType: string } | undefined)?.supportedIntegrationType ?? 'none'));
  return status || chosen;
}

test("webhook tunnel choice equals the package's websocketConnectionSelectorMiddleware", (t) => {
  snykConfigModule().setConfig({ universalBrokerEnabled: true, connections: {} });
  // Its "Unexpected type in webhook request" warnings would flood the test output.
  const snykLog = (require(join(SNYK_BROKER_DIR, 'dist', 'lib', 'logs', 'logger.js')) as { log: { level: (l?: string) => unknown } }).log;
  const level = snykLog.level();
  snykLog.level('fatal');
  t.after(() => snykLog.level(level as string));
  const mw = (require(join(HYBRID, 'client', 'routesHandler', 'websocketConnectionMiddlewares.js')) as { websocketConnectionSelectorMiddleware: Middleware }).websocketConnectionSelectorMiddleware;
  const pool = ['github', 'github-enterprise', 'github-server-app', 'github-cloud-app', 'bitbucket-server', 'bitbucket-server-bearer-auth', 'gitlab', 'jira-bearer-auth'];
  let compared = 0;
  for (let mask = 0; mask < 1 << pool.length; mask++) {
    const available = pool.filter((_, i) => mask & (1 << i));
    for (const pathType of [...UNIVERSAL_TYPE_NAMES, 'unknown']) {
      assert.equal(selectWebhookType(pathType, available) ?? 401, snykWebhookChoice(mw, pathType, available), `/webhook/${pathType} with ${available.join(',')}`);
      compared++;
    }
  }
  assert.equal(compared, 256 * 27);
  assert.deepEqual(webhookTypeCandidates('github'), ['github', 'github-enterprise', 'github-server-app', 'github-cloud-app']);
  assert.deepEqual(webhookTypeCandidates('bitbucket-server'), ['bitbucket-server', 'bitbucket-server-bearer-auth']);
  assert.deepEqual(webhookTypeCandidates('gitlab'), ['gitlab']);
});

test("each type's preset has its accept template (after npm run build), and names Snyk's template", async () => {
  const snykTemplates = join(SNYK_BROKER_DIR, 'dist', 'client-templates');
  for (const n of UNIVERSAL_TYPE_NAMES) {
    const t = UNIVERSAL_TYPES[n];
    if (t.snykTemplate !== undefined) assert.ok(existsSync(join(snykTemplates, t.snykTemplate, 'accept.json.sample')), `${n}: Snyk's ${t.snykTemplate} template`);
    if (t.preset === undefined) continue;
    assert.ok(isScmType(t.preset), n);
    assert.ok(existsSync((await loadPreset(t.preset)).acceptPath), `${n}: preset ${t.preset}`);
    if (t.snykTemplate !== undefined) assert.equal(t.preset, t.snykTemplate, `${n}: our presets are named after Snyk's templates`);
  }
  const withoutPreset = UNIVERSAL_TYPE_NAMES.filter((n) => UNIVERSAL_TYPES[n].preset === undefined);
  assert.deepEqual(withoutPreset, UNIVERSAL_TYPE_NAMES.filter((n) => UNIVERSAL_TYPES[n].craCompatible || n === 'workload'));
  assert.equal(UNIVERSAL_TYPES.github.preset, 'github-com');
  assert.equal(UNIVERSAL_TYPES['docker-hub'].snykTemplate, 'container-registry-agent');
});

test('lookups: only supported types, never inherited names; the table is frozen', () => {
  for (const n of ['nexus2', 'container-registry-agent', 'common', 'constructor', '__proto__', 'toString', 'GITHUB', '']) {
    assert.equal(isUniversalType(n), false, n);
    assert.equal(universalType(n), undefined, n);
  }
  const name: UniversalTypeName = 'github-enterprise';
  assert.equal(universalType(name), UNIVERSAL_TYPES[name]);
  assert.throws(() => ((UNIVERSAL_TYPES.github.defaults as Record<string, string>).GITHUB = 'evil.example'), TypeError);
  assert.throws(() => (UNIVERSAL_TYPES.gitlab.required as string[]).push('X'), TypeError);
  assert.equal(defaultsFor('github').GITHUB, 'github.com');
});
