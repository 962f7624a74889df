#!/usr/bin/env node
// Build step: copies Snyk's client templates (accept.json.sample + .env.sample per SCM type) from
// the pinned snyk-broker package into <outDir>/client-templates/, with snyk-broker's license text.
// The templates are not committed: bumping the snyk-broker version upgrades them.
// github-cloud-app, which Snyk ships only for Universal Broker, is derived from its classic
// github-server-app template (see deriveGithubCloudApp).
// Usage: copy-client-templates.mjs [outDir]   (default: dist)
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';

const root = new URL('..', import.meta.url).pathname;
const outDir = resolve(root, process.argv[2] ?? 'dist');
const require = createRequire(join(root, 'package.json'));
let pkgDir;
try {
  pkgDir = resolve(require.resolve('snyk-broker/package.json'), '..');
} catch {
  console.error('copy-client-templates: the snyk-broker package is not installed (it is a devDependency: run npm ci before npm prune)');
  process.exit(1);
}
const from = join(pkgDir, 'dist', 'client-templates');
if (!existsSync(join(from, 'github-com', 'accept.json.sample'))) {
  console.error(`copy-client-templates: ${from} has no templates`);
  process.exit(1);
}
const version = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version;
const to = join(outDir, 'client-templates');
rmSync(to, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
cpSync(from, to, { recursive: true });
cpSync(join(pkgDir, 'LICENSE'), join(to, 'LICENSE'));
writeFileSync(
  join(to, 'NOTICE'),
  `These client templates are copied unchanged from the npm package snyk-broker ${version}\n` +
    `(dist/client-templates/), Copyright Snyk Ltd., licensed under the Apache License 2.0 (LICENSE).\n` +
    `github-cloud-app/ is derived by ha-broker: github-server-app's accept template without its two\n` +
    `webhook update rules, and github-com's host defaults (scripts/copy-client-templates.mjs).\n`,
);

/**
 * Snyk's Universal Broker rules for github-cloud-app are its github-server-app rules without
 * the two webhook updates (PATCH .../hooks/:id and .../hooks/:id/config); the hosts are
 * github.com's, as in the github-com template's .env. So the classic preset is the classic
 * github-server-app template without those two rules, with github.com's host defaults.
 */
function deriveGithubCloudApp() {
  const dropped = new Set(['PATCH /repos/:name/:repo/hooks/:id', 'PATCH /repos/:name/:repo/hooks/:id/config']);
  const accept = JSON.parse(readFileSync(join(to, 'github-server-app', 'accept.json.sample'), 'utf8'));
  const before = accept.private.length;
  accept.private = accept.private.filter((r) => !dropped.has(`${(r.method ?? 'get').toUpperCase()} ${r.path}`));
  if (before - accept.private.length !== dropped.size) {
    console.error(`copy-client-templates: github-server-app's template no longer has the ${dropped.size} webhook update rules github-cloud-app lacks; check the derivation`);
    process.exit(1);
  }
  mkdirSync(join(to, 'github-cloud-app'), { recursive: true });
  writeFileSync(join(to, 'github-cloud-app', 'accept.json.sample'), `${JSON.stringify(accept, null, 2)}\n`);
  const hosts = ['GITHUB', 'GITHUB_RAW', 'GITHUB_API', 'GITHUB_GRAPHQL'];
  const env = readFileSync(join(to, 'github-com', '.env.sample'), 'utf8')
    .split('\n')
    .filter((line) => hosts.some((h) => line.startsWith(`${h}=`)));
  writeFileSync(join(to, 'github-cloud-app', '.env.sample'), `# Derived by ha-broker from the github-com template: github.com's hosts.\n${env.join('\n')}\n`);
}
deriveGithubCloudApp();
console.log(`copy-client-templates: snyk-broker ${version} templates -> ${to}`);
