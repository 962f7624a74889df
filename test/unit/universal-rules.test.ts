// The accept rules a Universal Broker connection of each type runs with (the pinned package's
// classic template for the type, with the rules Snyk's Universal files add to it) against Snyk's Universal rule files (defaultFilters/<type>.json,
// reference data beside the checkout: skipped without it). They are the same rules but for the
// differences listed here, each one known and documented (docs/universal-broker.md): a new
// difference, either way, fails this test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UNIVERSAL_TYPES, type UniversalTypeName } from '../../src/config/universal-types.js';
import { loadPreset } from '../../src/config/presets.js';
import { withUniversalRules, type AcceptFile } from '../../src/filters/index.js';
import { SNYK_BROKER_DATA_DIR } from '../support/paths.js';

interface Rule {
  method?: string;
  path?: string;
  origin?: string;
}
interface RuleFile {
  private?: Rule[];
  public?: Rule[];
}

const FILTERS = SNYK_BROKER_DATA_DIR && join(SNYK_BROKER_DATA_DIR, 'defaultFilters');
const withData = { skip: FILTERS && existsSync(FILTERS) ? false : 'no snyk-broker-data defaultFilters (../shared or SNYK_BROKER_DATA_DIR)' };

/** The rule's identity: method, path and origin (comments and `valid` checks aside). */
function key(r: Rule): string {
  return `${(r.method ?? 'GET').toUpperCase()} ${r.path ?? '/'} ${r.origin ?? ''}`;
}

function keys(rules: Rule[] | undefined): Set<string> {
  return new Set((rules ?? []).map(key));
}

/** Rules only in ours (`+`) or only in Snyk's Universal file (`-`), per type; everything else equal. */
const KNOWN: Partial<Record<UniversalTypeName, { ours: RegExp[]; snyks: RegExp[] }>> = {
  jira: { ours: [/\/rest\/api\/2\/groups\/picker/], snyks: [] },
  'jira-bearer-auth': { ours: [/\/rest\/api\/2\/groups\/picker/], snyks: [] },
  // The same rule with the path parameter named :commentId in the template, {comment_id} in Snyk's file.
  'azure-repos': { ours: [/:commentId/], snyks: [/\{comment_id\}/] },
  // Snyk's Universal App rules carry the token in `auth`, the classic template none: ours adds it
  // at load, and client-github-app.test.ts compares all 184 rules after that.
  'github-server-app': { ours: [/./], snyks: [/./] },
};

const SERVED = (Object.keys(UNIVERSAL_TYPES) as UniversalTypeName[]).filter((t) => UNIVERSAL_TYPES[t].preset && t !== 'github-cloud-app');

for (const type of SERVED) {
  test(`${type}: the connection's rules are Snyk's Universal rules but for the known differences`, withData, async () => {
    const t = UNIVERSAL_TYPES[type];
    const template = JSON.parse(readFileSync((await loadPreset(t.preset!)).acceptPath, 'utf8')) as AcceptFile;
    const ours = withUniversalRules(template, type) as RuleFile;
    const snyks = JSON.parse(readFileSync(join(FILTERS!, `${t.snykFilters}.json`), 'utf8')) as RuleFile;
    const known = KNOWN[type] ?? { ours: [], snyks: [] };
    for (const side of ['private', 'public'] as const) {
      const a = keys(ours[side]);
      const b = keys(snyks[side]);
      const onlyOurs = [...a].filter((k) => !b.has(k));
      const onlySnyks = [...b].filter((k) => !a.has(k));
      assert.deepEqual(onlyOurs.filter((k) => !known.ours.some((re) => re.test(k))), [], `${side}: rules only in ours`);
      assert.deepEqual(onlySnyks.filter((k) => !known.snyks.some((re) => re.test(k))), [], `${side}: rules only in Snyk's`);
      // A listed difference that no longer exists is stale: the list must be kept exact.
      if (side === 'private' && type !== 'github-server-app') {
        for (const re of known.ours) assert.ok(onlyOurs.some((k) => re.test(k)), `${re} is listed as only in ours but is not`);
        for (const re of known.snyks) assert.ok(onlySnyks.some((k) => re.test(k)), `${re} is listed as only in Snyk's but is not`);
      }
    }
  });
}
