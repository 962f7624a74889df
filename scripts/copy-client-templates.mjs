#!/usr/bin/env node
// Build step: copies Snyk's client templates (accept.json.sample + .env.sample per SCM type) from
// the pinned snyk-broker package into <outDir>/client-templates/, with snyk-broker's license text.
// The templates are not committed: bumping the snyk-broker version upgrades them.
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
    `(dist/client-templates/), Copyright Snyk Ltd., licensed under the Apache License 2.0 (LICENSE).\n`,
);
console.log(`copy-client-templates: snyk-broker ${version} templates -> ${to}`);
