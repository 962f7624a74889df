#!/usr/bin/env node
// Runs every compiled test file with node's test runner. Usage: run-tests.mjs [dir-or-file-filter...]
// Filters match path substrings of build/test/**/*.test.js (e.g. `unit`, `interop`).
// Without filters every file runs except the long fault suite under faults/ (`npm run test:faults`).
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const testRoot = join(root, 'build', 'test');

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk(testRoot)
  .filter((f) => (filters.length === 0 ? !relative(testRoot, f).startsWith('faults/') : filters.some((x) => relative(testRoot, f).includes(x))))
  .sort();
if (files.length === 0) {
  console.error(`no test files matched ${filters.join(' ') || '(all)'} under ${testRoot}`);
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
// A test that hangs fails after TEST_TIMEOUT_MS instead of stalling CI; --test-force-exit ends a
// file whose tests are done even if a leaked handle would keep it alive (leaks have their own tests).
const timeout = process.env.TEST_TIMEOUT_MS ?? '300000';
const child = spawn(process.execPath, ['--test', '--test-force-exit', `--test-timeout=${timeout}`, `--test-concurrency=${concurrency}`, ...files], { stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
