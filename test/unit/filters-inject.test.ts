// Differential test of ACCEPT_* rule injection: for every client template of the pinned snyk-broker
// package and every combination of the switches, our effective rule list equals what snyk-broker's
// own loader (injectRulesAtRuntime, exported by its filter-rules-loading module) produces.
//
// Coverage: the six boolean switches (ACCEPT_CODE, ACCEPT_GIT, ACCEPT_LARGE_MANIFESTS,
// ACCEPT_APPRISK, ACCEPT_ESSENTIALS, ACCEPT_CUSTOM_PR_TEMPLATES) each unset, "true" or "false" in
// every combination (3^6), crossed with ACCEPT_IAC unset, "false" and its documented value forms
// (one extension, all five, spaced, unknown only, mixed), and DISABLE_SNIPPETS unset or set where
// ACCEPT_CODE or ACCEPT_GIT is "true" (it only shapes the Snyk Code rules).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { injectAcceptRules, parseAcceptJson, type AcceptFile, type AcceptRule } from '../../src/filters/index.js';
import { SNYK_BROKER_DIR } from '../support/paths.js';

type SnykInject = (filters: unknown, config: Record<string, unknown>, ruleType?: string) => { private: AcceptRule[]; public?: AcceptRule[] };

const SWITCHES = ['ACCEPT_CODE', 'ACCEPT_GIT', 'ACCEPT_LARGE_MANIFESTS', 'ACCEPT_APPRISK', 'ACCEPT_ESSENTIALS', 'ACCEPT_CUSTOM_PR_TEMPLATES'] as const;
const IAC_FORMS = [undefined, 'false', 'tf', 'tf,yaml,yml,json,tpl', ' yaml , json ', 'bogus', 'tpl,bogus'];
const TEMPLATES_DIR = join(SNYK_BROKER_DIR, 'dist', 'client-templates');

function snykLoader(): SnykInject {
  // Its logger reads LOG_LEVEL once, at load: keep the run quiet. Its switches are read from
  // process.env before the config: none may be set here.
  process.env.LOG_LEVEL = 'fatal';
  for (const name of [...SWITCHES, 'ACCEPT_IAC', 'DISABLE_SNIPPETS']) delete process.env[name];
  const require = createRequire(import.meta.url);
  const mod = require(join(SNYK_BROKER_DIR, 'dist', 'lib', 'hybrid-sdk', 'common', 'filter', 'filter-rules-loading.js')) as { injectRulesAtRuntime: SnykInject };
  return mod.injectRulesAtRuntime;
}

/** snyk-broker's loadFilters reads a missing path as '' and prefixes '/'; our parser does it at load. */
function normalized(file: { private: AcceptRule[]; public?: AcceptRule[] }): AcceptFile {
  const fix = (r: AcceptRule) => ({ ...r, path: r.path ? (r.path.startsWith('/') ? r.path : `/${r.path}`) : '/' });
  return { private: file.private.map(fix), public: (file.public ?? []).map(fix) };
}

function* combinations(): Generator<Record<string, string>> {
  const values = [undefined, 'true', 'false'];
  const total = values.length ** SWITCHES.length;
  for (let n = 0; n < total; n++) {
    const vars: Record<string, string> = {};
    let k = n;
    for (const name of SWITCHES) {
      const v = values[k % values.length];
      k = Math.floor(k / values.length);
      if (v !== undefined) vars[name] = v;
    }
    for (const iac of IAC_FORMS) {
      // DISABLE_SNIPPETS only matters with Snyk Code on.
      const codeOn = [vars.ACCEPT_CODE, vars.ACCEPT_GIT].some((v) => v === 'true');
      for (const snippets of codeOn ? [undefined, 'true'] : [undefined]) {
        const full = { ...vars };
        if (iac !== undefined) full.ACCEPT_IAC = iac;
        if (snippets !== undefined) full.DISABLE_SNIPPETS = snippets;
        yield full;
      }
    }
  }
}

test('ACCEPT_* injection equals snyk-broker\'s loader for every template and every combination', () => {
  const snyk = snykLoader();
  const templates = readdirSync(TEMPLATES_DIR).filter((d) => !d.includes('.')).sort();
  assert.ok(templates.length >= 14, `only ${templates.length} templates found in ${TEMPLATES_DIR}`);
  let compared = 0;
  let snykThrew = 0;
  const started = Date.now();
  for (const name of templates) {
    const text = readFileSync(join(TEMPLATES_DIR, name, 'accept.json.sample'), 'utf8');
    const ours0 = parseAcceptJson(text, name);
    // snyk-broker's loader changes rules in place only in its Azure Repos IaC branch; elsewhere it
    // copies before changing, so it can share one parsed template (fresh lists) and be compared
    // rule by rule: a rule both sides left untouched is compared once, here.
    const base = JSON.parse(text) as { private: AcceptRule[]; public?: AcceptRule[] };
    assert.deepEqual(ours0, normalized(base), `${name}: our parse differs from snyk-broker's`);
    const editsInPlace = base.private[0]?.origin?.includes('AZURE') ?? false;
    const sameRule = (o: AcceptRule, t: AcceptRule, i: number, side: 'private' | 'public') =>
      (o === ours0[side][i] && t === (base[side] ?? [])[i]) || JSON.stringify(o) === JSON.stringify(normalized({ private: [t] }).private[0]);
    let changedSome = false;
    for (const vars of combinations()) {
      const ours = injectAcceptRules(ours0, vars);
      let theirs: ReturnType<SnykInject> | undefined;
      try {
        const input = editsInPlace && vars.ACCEPT_IAC ? JSON.parse(text) : { private: [...base.private], public: base.public ? [...base.public] : undefined };
        theirs = snyk(input, { ...vars, supportedBrokerTypes: [] });
      } catch (err) {
        // snyk-broker crashes at start (a TypeError) when ACCEPT_IAC/ACCEPT_CODE find no rule to
        // derive from (Jira, Artifactory, Nexus, AppRisk...); we add nothing and say why instead.
        snykThrew++;
        assert.ok(err instanceof TypeError || err instanceof SyntaxError, `${name} ${JSON.stringify(vars)}: snyk-broker threw ${err}`);
        assert.ok(ours.notes.some((n) => n.level === 'warn'), `${name} ${JSON.stringify(vars)}: snyk-broker fails here; ours must warn`);
        continue;
      }
      const equal = (['private', 'public'] as const).every((side) => {
        const t = theirs[side] ?? [];
        return ours.accept[side].length === t.length && ours.accept[side].every((r, i) => sameRule(r, t[i]!, i, side));
      });
      if (!equal) assert.deepEqual(ours.accept, normalized(theirs), `${name} with ${JSON.stringify(vars)}`);
      if (ours.accept.private.length !== ours0.private.length || ours.accept.private.some((r, i) => r !== ours0.private[i])) changedSome = true;
      compared++;
    }
    // The original is never changed in place (the Azure form edits rule lists).
    assert.deepEqual(ours0, parseAcceptJson(text, name));
    if (['github-com', 'github-enterprise', 'gitlab', 'bitbucket-server', 'azure-repos'].includes(name)) assert.ok(changedSome, `${name}: no combination injected anything`);
  }
  console.log(`ACCEPT_* differential: ${templates.length} templates, ${compared} combinations equal, ${snykThrew} where snyk-broker throws, ${Date.now() - started} ms`);
  assert.ok(compared > 10_000);
});

test('injection shapes: Snyk Code git rules per SCM, IaC per extension, large manifests for GitHub only', () => {
  const load = (name: string) => parseAcceptJson(readFileSync(join(TEMPLATES_DIR, name, 'accept.json.sample'), 'utf8'), name);
  const gh = load('github-com');
  const code = injectAcceptRules(gh, { ACCEPT_CODE: 'true' }).accept.private.slice(gh.private.length);
  assert.deepEqual(code.map((r) => [r.method, r.path, r.origin]), [
    ['GET', '/*/info/refs*', 'https://pat:${GITHUB_TOKEN}@${GITHUB}'],
    ['POST', '/*/git-upload-pack', 'https://pat:${GITHUB_TOKEN}@${GITHUB}'],
    ['GET', '/repos/:name/:repo/contents/:path', gh.private.find((r) => r.method === 'GET' && r.origin?.includes('{GITHUB_API}'))!.origin],
  ]);
  const bb = load('bitbucket-server');
  const bbCode = injectAcceptRules(bb, { ACCEPT_GIT: 'yes', DISABLE_SNIPPETS: 'true' }).accept.private.slice(bb.private.length);
  assert.deepEqual(bbCode.map((r) => r.origin), ['https://${BITBUCKET_GIT}', 'https://${BITBUCKET_GIT}']);
  // DISABLE_SNIPPETS=false keeps the snippets rule (snyk-broker would drop it for any non-empty value;
  // the client's config accepts only true/false forms, so ours does what the value says).
  for (const off of ['false', 'no', '0']) {
    assert.equal(injectAcceptRules(gh, { ACCEPT_CODE: 'true', DISABLE_SNIPPETS: off }).accept.private.length, gh.private.length + 3, `DISABLE_SNIPPETS=${off}`);
  }
  assert.equal(injectAcceptRules(gh, { ACCEPT_CODE: 'true', DISABLE_SNIPPETS: 'yes' }).accept.private.length, gh.private.length + 2);
  const iac = injectAcceptRules(gh, { ACCEPT_IAC: 'tf,bogus' });
  assert.ok(iac.accept.private.length > gh.private.length);
  assert.ok(iac.accept.private.slice(gh.private.length).every((r) => r.path.includes('.tf') || r.path.includes('tf')));
  assert.equal(injectAcceptRules(gh, { ACCEPT_CODE: 'false', ACCEPT_GIT: 'true' }).accept.private.length, gh.private.length, 'ACCEPT_CODE=false is read first, as in snyk-broker');
  const gl = load('gitlab');
  const large = injectAcceptRules(gl, { ACCEPT_LARGE_MANIFESTS: 'true' });
  assert.equal(large.accept.private.length, gl.private.length);
  assert.ok(large.notes.some((n) => n.level === 'warn' && /GitHub only/.test(n.message)));
});
