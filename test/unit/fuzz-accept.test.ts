import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RuleSet, parseAcceptJson, splitOrigin, variablesIn, type AcceptRule } from '../../src/filters/index.js';
import { SNYK_BROKER_DIR } from '../support/paths.js';
import { fuzz, mutateStringN, randomString, randomJson, PERCENT_TRICKS, UNICODE_SAMPLES, type Rng } from '../support/fuzz.js';

const TEMPLATES = ['github-enterprise', 'gitlab', 'bitbucket-server', 'artifactory', 'jira', 'nexus'];

/** Harmless values for every ${VAR} a template uses; hosts get a path to exercise base paths. */
function varsFor(rules: AcceptRule[]): Record<string, string> {
  const names = rules.flatMap((r) => [r.origin, r.auth?.token, r.auth?.username, r.auth?.password].filter((t): t is string => typeof t === 'string').flatMap(variablesIn));
  return Object.fromEntries(names.map((n) => [n, /TOKEN|PASSWORD|USERNAME|PAT|KEY/.test(n) ? 'secret' : /API$/.test(n) ? 'origin.example/api/v3' : 'origin.example']));
}

const SETS = TEMPLATES.map((name) => {
  const doc = parseAcceptJson(readFileSync(join(SNYK_BROKER_DIR, 'dist', 'client-templates', name, 'accept.json.sample'), 'utf8'), name);
  const rules = [...doc.private, ...doc.public];
  return { name, rules, set: new RuleSet(rules, varsFor(rules), name), vars: varsFor(rules) };
});

const SEGMENT_TRICKS = ['..', '.', '%2e%2e', '%2E%2e', '.%2e', '%252e%252e', 'a%2fb', 'a%2F..%2Fb', '..;', '.\n.', '.\t.', '\\', '%5c', '', '%00', '\uff0e\uff0e', '\u2025', '%c0%ae', '...', '.. ', '@evil.com', 'x#/../..', 'x?/../..', '%3f', '%23'];
const METHODS = ['GET', 'get', 'GeT', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'ANY', 'CONNECT', ''];

function segment(rng: Rng): string {
  switch (rng.int(4)) {
    case 0: return rng.pick(SEGMENT_TRICKS);
    case 1: return randomString(rng, 12).replace(/[/?#]/g, '');
    case 2: return rng.pick(['acme', 'app', 'package.json', 'src', 'main', '1', 'group%2Fproject', '.github']);
    default: return rng.pick([...PERCENT_TRICKS, ...UNICODE_SAMPLES]);
  }
}

/** A concrete URL for a rule's path pattern: params and wildcards filled with ordinary or tricky segments. */
function instantiate(rng: Rng, pattern: string): string {
  let path = pattern.replace(/:([A-Za-z0-9_]+)(\([^)]*\))?(\?)?/g, () => segment(rng)).replace(/\*/g, () => Array.from({ length: 1 + rng.int(4) }, () => segment(rng)).join('/'));
  if (rng.chance(0.3)) path = mutateStringN(rng, path, [], 2);
  if (rng.chance(0.3)) path += `?${rng.pick(['ref=main', 'per_page=100', 'a=../../x', randomString(rng, 20)])}`;
  return path;
}

/** Percent-decodes valid %XX runs, as an origin reading a path segment would. */
function decodeSegment(s: string): string {
  // The URL parser sends a lone surrogate as U+FFFD; compare like for like.
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd').replace(/(?:%[0-9a-f]{2})+/gi, (run) => Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8'));
}

test('fuzz the accept-rule matcher against the real client templates: no crash; an allowed request never leaves its host or walks out of its rule', async (t) => {
  const counts = { allowed: 0, refused: 0 };
  const stats = await fuzz('accept', (c) => {
    const { rng } = c;
    const s = rng.pick(SETS);
    const rule = rng.pick(s.rules);
    const method = rng.chance(0.8) ? (rule.method ?? 'GET') : rng.pick(METHODS);
    const url = rng.chance(0.05) ? randomString(rng, 200) : instantiate(rng, rule.path);
    const headers: Record<string, string | string[]> = rng.chance(0.5) ? { 'x-github-event': rng.pick(['push', 'pull_request', 'ping']), accept: 'application/json' } : { [randomString(rng, 8).toLowerCase()]: randomString(rng, 8) };
    const body = rng.chance(0.5) ? JSON.stringify(randomJson(rng, 3)) : rng.chance(0.5) ? randomString(rng, 100) : undefined;
    c.input({ set: s.name, method, url, headers, body });
    const result = s.set.match({ method, url, headers, body });
    assert.equal(typeof result.allowed, 'boolean');
    if (!result.allowed) {
      counts.refused++;
      assert.equal(typeof result.reason, 'string');
      return;
    }
    counts.allowed++;
    if (result.targetUrl === undefined) return;
    const origin = new URL(splitOrigin(result.rule.origin!.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, n: string) => s.vars[n] ?? '')).base);
    const target = new URL(result.targetUrl);
    // Same host, scheme and port as the rule's origin.
    assert.equal(target.origin, origin.origin, 'allowed request stays on its origin');
    // The path the origin receives is the path that was matched: the URL parser removed no dot
    // segment and dropped no character, so segment by segment the decoded texts agree.
    const rawPath = origin.pathname.replace(/\/$/, '') + url.split('#', 1)[0]!.split('?', 1)[0]!;
    const sent = target.pathname.split('/').map(decodeSegment);
    const matched = rawPath.split('/').map(decodeSegment);
    assert.deepEqual(sent, matched, 'the URL parser did not rewrite the path');
    // After one decoding, no segment (or part of one behind an encoded slash) is a dot segment.
    for (const seg of sent) {
      for (const part of seg.split(/[/\\]/)) assert.ok(!/^[. ]*\.[. ]*(;.*)?$/.test(part.normalize('NFKC')), `decoded path has a dot segment: ${JSON.stringify(seg)}`);
    }
    // And the path stays under the literal prefix of the rule that allowed it.
    const prefix = result.rule.path.split(/[:*]/, 1)[0]!.replace(/[^/]*$/, '');
    assert.ok(sent.join('/').toLowerCase().startsWith((origin.pathname.replace(/\/$/, '') + prefix).toLowerCase()), `path stays under ${prefix}`);
  });
  t.diagnostic(`${stats.cases} cases, seed ${stats.seed}, ${Math.round(stats.ms)} ms, slowest case #${stats.slowestIndex} ${stats.slowestMs.toFixed(1)} ms, ${JSON.stringify(counts)}, rule sets ${TEMPLATES.join(', ')} (${SETS.reduce((n, s) => n + s.rules.length, 0)} rules)`);
  if (stats.cases > 1000) assert.ok(counts.allowed > 100 && counts.refused > 100, 'both outcomes were exercised');
});
