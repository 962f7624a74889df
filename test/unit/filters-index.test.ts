import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compilePathPattern, injectAcceptRules, isSafePath, parseAcceptJson, RuleSet, splitUrl, variablesIn, type AcceptRule, type FilterRequest } from '../../src/filters/index.js';
import { pathShape, probePath, shapeAdmits } from '../../src/filters/path-pattern.js';
import { SNYK_BROKER_DIR } from '../support/paths.js';
import { Rng } from '../support/fuzz.js';

// RuleSet.find walks an index (method, first path segment, literal end) and skips rules whose
// path shape cannot match; the result must be exactly a linear first-match scan's.

const TEMPLATES_DIR = join(SNYK_BROKER_DIR, 'dist', 'client-templates');
const TEMPLATES = readdirSync(TEMPLATES_DIR).filter((t) => !t.startsWith('.'));

function varsFor(rules: AcceptRule[]): Record<string, string> {
  const names = rules.flatMap((r) => [r.origin, r.auth?.token, r.auth?.username, r.auth?.password].filter((t): t is string => typeof t === 'string').flatMap(variablesIn));
  return Object.fromEntries(names.map((n) => [n, /TOKEN|PASSWORD|USERNAME|PAT|KEY/.test(n) ? 'secret' : 'origin.example']));
}

interface Side {
  name: string;
  rules: AcceptRule[];
  set: RuleSet;
  /** Per rule: its method, its regex and a one-rule set that checks only its `valid` entries. */
  linear: { method: string; path: RegExp; checks: RuleSet }[];
}

const SIDES: Side[] = TEMPLATES.flatMap((name) => {
  const file = parseAcceptJson(readFileSync(join(TEMPLATES_DIR, name, 'accept.json.sample'), 'utf8'), name);
  // As our client loads a preset: with ACCEPT_CODE's rules (github-com's and gitlab's `*/info/refs*` among them).
  const { accept } = injectAcceptRules(file, { ACCEPT_CODE: 'true', ACCEPT_LARGE_MANIFESTS: 'true' });
  return (['private', 'public'] as const).map((side) => {
    const rules = accept[side];
    const vars = varsFor(rules);
    return {
      name: `${name} ${side}`,
      rules,
      set: new RuleSet(rules, vars, name),
      linear: rules.map((r) => ({ method: (r.method ?? 'get').toLowerCase(), path: compilePathPattern(r.path), checks: new RuleSet([{ ...r, path: '*' }], vars, name) })),
    };
  });
});

/** A linear scan of the rules in file order: the first whose method, path and checks fit. */
function linearFind(side: Side, req: FilterRequest): number {
  if (!isSafePath(req.url)) return -1;
  const { path } = splitUrl(req.url);
  const m = req.method.toLowerCase();
  return side.linear.findIndex((l) => (l.method === m || l.method === 'any') && l.path.test(path) && 'rule' in l.checks.find(req));
}

const ODD_SEGMENTS = ['', 'A', 'acme', 'APP', 'src%2Fmain.ts', 'package.json', 'PACKAGE.JSON', 'go.mod', 'a%20b', '%2e', '%zz', 'x.txt', 'requirements', 'info', 'refs', 'git-upload-pack', 'contents', 'repos', 'REPOS', 'api', 'v4', 'projects', 'rest', '\u212aey', 'ς', 'σ', 'İ', '%E2%82%AC', '.github', 'a;b', 'Dockerfile', 'x.tf', 'yarn.lock', '1'];

function segment(rng: Rng): string {
  return rng.chance(0.6) ? rng.pick(ODD_SEGMENTS) : Array.from({ length: 1 + rng.int(8) }, () => rng.pick(['a', 'Z', '.', '-', '%2F', '%', '_', 'ö', '9'])).join('');
}

function flipCase(rng: Rng, s: string): string {
  return [...s].map((ch) => (rng.chance(0.3) ? (ch === ch.toLowerCase() ? ch.toUpperCase() : ch.toLowerCase()) : ch)).join('');
}

/** A request path for a rule's pattern, often bent: other case, trailing or doubled slashes, cut or extended, a query. */
function pathFor(rng: Rng, pattern: string): string {
  let path = pattern.replace(/:([A-Za-z0-9_]+)(\([^)]*\))?(\?)?/g, (_, _n, _g, opt) => (opt && rng.chance(0.3) ? '\u0000' : segment(rng)))
    .replace(/\*/g, () => Array.from({ length: rng.int(3) }, () => segment(rng)).join('/'))
    // An optional parameter left out takes its slash along.
    .replace(/\/?\u0000/g, '');
  if (rng.chance(0.3)) path = flipCase(rng, path);
  if (rng.chance(0.2)) path += '/';
  if (rng.chance(0.1)) path += '//';
  if (rng.chance(0.1)) path = path.replace('/', '//');
  if (rng.chance(0.15)) path = path.slice(0, rng.int(path.length + 1));
  if (rng.chance(0.15)) path += `/${segment(rng)}`;
  if (rng.chance(0.05)) path = path.replace(/^\//, '');
  if (rng.chance(0.05)) path = '/';
  if (rng.chance(0.3)) path += `?${rng.pick(['ref=main', 'per_page=100', 'a=b&c', '', 'x=%2F'])}`;
  return path;
}

const METHODS = ['GET', 'get', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'ANY'];

function requests(rng: Rng, side: Side): FilterRequest {
  const rule = rng.pick(side.rules);
  const method = rng.chance(0.8) ? (rule.method ?? 'GET') : rng.pick(METHODS);
  const headers: Record<string, string> = rng.chance(0.5) ? { 'x-github-event': rng.pick(['push', 'pull_request']), accept: rng.pick(['application/json', 'application/vnd.github.v4.sha']) } : {};
  const body = rng.chance(0.3) ? JSON.stringify({ query: rng.pick(['{ repository { id } }', 'mutation x']), name: 'x' }) : undefined;
  return { method, url: pathFor(rng, rule.path), headers, body };
}

test('indexed RuleSet.find and needsBody give a linear first-match scan\'s answer on every Snyk template (github-com, gitlab, ...)', () => {
  const rng = new Rng(0x1d3c5);
  let allowed = 0;
  let total = 0;
  for (const side of SIDES) {
    if (side.rules.length === 0) continue;
    for (let i = 0; i < 3000; i++) {
      const req = requests(rng, side);
      const want = linearFind(side, req);
      const got = side.set.find(req);
      const gotIndex = 'rule' in got ? side.rules.indexOf(got.rule) : -1;
      assert.equal(gotIndex, want, `${side.name}: ${req.method} ${req.url}`);
      const { path } = splitUrl(req.url);
      const m = req.method.toLowerCase();
      const wantBody = side.linear.some((l) => (l.method === m || l.method === 'any') && l.path.test(path) && l.checks.needsBody(req.method, req.url));
      assert.equal(side.set.needsBody(req.method, req.url), wantBody, `${side.name}: needsBody ${req.method} ${req.url}`);
      total++;
      if (want >= 0) allowed++;
    }
  }
  // Both answers are exercised: many requests match (late rules too), many do not.
  assert.ok(allowed > total / 5 && allowed < total * 0.95, `${allowed} of ${total} allowed`);
});

test('a path shape admits every path its pattern matches (all rules of all templates, bent paths)', () => {
  const rng = new Rng(0x5a9e);
  const patterns = [...new Set(SIDES.flatMap((s) => s.rules.map((r) => r.path)))];
  // Odd patterns of the syntax as well: optional and custom parameters, stars inside segments, non-ASCII, a trailing slash.
  patterns.push('/', '', '*', '/a/:b?', '/a/:b?/c', '/:x?', '/a:b?', '/repos/', '/a//b', '/files/:p(.*)', '/σ/:x', '/café/x', '/ab*cd/x', '/x/:y*', '/x.json/', '/K/x', '/x/*/ab/:c?', '/x/*/ab/:c?/d');
  const compiled = patterns.map((p) => ({ p, re: compilePathPattern(p), shape: pathShape(p) }));
  let matched = 0;
  for (let i = 0; i < 4000; i++) {
    const path = splitUrl(pathFor(rng, rng.pick(patterns))).path;
    const probe = probePath(path);
    for (const { p, re, shape } of compiled) {
      if (!re.test(path)) continue;
      matched++;
      assert.ok(shapeAdmits(shape, probe), `${JSON.stringify(p)} matches ${JSON.stringify(path)} but its shape ${JSON.stringify(shape)} refuses it`);
    }
  }
  assert.ok(matched > 1000, `${matched} matches`);
});

test('path shapes of the pattern syntax', () => {
  assert.deepEqual(pathShape('/repos/:name/:repo/contents/:path*/package.json'), { fixed: ['repos', undefined, undefined, 'contents'], closed: false, chunks: [], suffix: '/package.json', slashOptional: true });
  assert.deepEqual(pathShape('/repos/:user/:repo'), { fixed: ['repos', undefined, undefined], closed: true, chunks: [], suffix: '', slashOptional: true });
  assert.deepEqual(pathShape('/*/info/refs*'), { fixed: [], closed: false, chunks: ['/info/refs'], suffix: '', slashOptional: true });
  // The slash before an optional parameter is not required; one a pattern ends with is.
  assert.deepEqual(pathShape('/a/:b?'), { fixed: ['a'], closed: false, chunks: [], suffix: '', slashOptional: true });
  assert.deepEqual(pathShape('/repos/'), { fixed: ['repos', ''], closed: true, chunks: [], suffix: '/repos/', slashOptional: false });
  // Non-ASCII text constrains nothing (case folding differs between the regex and toLowerCase).
  assert.deepEqual(pathShape('/σx/abc'), { fixed: [], closed: false, chunks: [], suffix: 'x/abc', slashOptional: true });
  const probe = probePath('/REPOS/acme/app/');
  assert.ok(shapeAdmits(pathShape('/repos/:user/:repo'), probe));
  assert.ok(!shapeAdmits(pathShape('/repos/:user'), probe));
});
