import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { injectAcceptRules, parseAcceptJson, RuleSet, type FilterRequest } from '../src/filters/index.js';
import { SNYK_BROKER_DIR } from '../test/support/paths.js';

/**
 * `node build/bench/rule-find.js`: RuleSet.find per call (ns) on Snyk's github-com template with
 * ACCEPT_CODE=true (as our client loads it for BROKER_SCM_TYPE=github-com), for a few requests
 * that match early, late or not at all. Median of ROUNDS rounds of CALLS calls each.
 */
const ROUNDS = Number(process.env.ROUNDS ?? 9);
const CALLS = Number(process.env.CALLS ?? 200_000);

const vars = { GITHUB_TOKEN: 'token', GITHUB: 'github.com', GITHUB_API: 'api.github.com', GITHUB_RAW: 'raw.githubusercontent.com', GITHUB_GRAPHQL: 'api.github.com', ACCEPT_CODE: 'true' };
const file = parseAcceptJson(readFileSync(join(SNYK_BROKER_DIR, 'dist', 'client-templates', 'github-com', 'accept.json.sample'), 'utf8'), 'github-com');
const { accept } = injectAcceptRules(file, vars);
const set = new RuleSet(accept.private, vars, 'github-com');
// The bench's own client accept file (systems.ts): one rule that takes everything.
const permissive = new RuleSet([{ method: 'any', path: '/*', origin: 'http://127.0.0.1:1' }], {}, 'permissive');

const REQUESTS: Array<[string, FilterRequest]> = [
  ['GET /user (early)', { method: 'GET', url: '/user', headers: {} }],
  ['GET contents/:path (the bench row, last GET rule)', { method: 'GET', url: '/repos/acme/app/contents/src%2Fmain.ts?ref=main', headers: {} }],
  ['GET git/trees/:ref', { method: 'GET', url: '/repos/acme/app/git/trees/main?recursive=1', headers: {} }],
  ['GET raw package.json', { method: 'GET', url: '/acme/app/main/package.json', headers: {} }],
  ['GET blocked', { method: 'GET', url: '/repos/acme/app/actions/secrets', headers: {} }],
  ['POST git-upload-pack', { method: 'POST', url: '/acme/app.git/git-upload-pack', headers: {} }],
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

process.stdout.write(`github-com + ACCEPT_CODE: ${accept.private.length} private rules; median of ${ROUNDS} rounds x ${CALLS} calls\n`);
const perFind = (rules: RuleSet, req: FilterRequest) => {
  const perCall: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) rules.find(req);
    perCall.push(Number(process.hrtime.bigint() - t0) / CALLS);
  }
  return median(perCall);
};

for (const [label, req] of REQUESTS) {
  const found = set.find(req);
  const where = 'rule' in found ? `rule #${accept.private.indexOf(found.rule)}` : 'blocked';
  process.stdout.write(`  ${label.padEnd(52)} ${where.padEnd(10)} ${perFind(set, req).toFixed(0).padStart(6)} ns/find\n`);
}
process.stdout.write(`  ${'the bench row with the bench\'s one-rule accept file'.padEnd(63)} ${perFind(permissive, REQUESTS[1]![1]).toFixed(0).padStart(6)} ns/find\n`);
