// scripts/install-system-deps.sh runs before `npm test` (pretest). Where a Debian tool is missing
// and cannot be installed, it must stop at once with one message naming the command to run,
// instead of letting the chart, Redis and image tests fail one by one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, symlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/paths.js';

const SCRIPT = join(REPO_ROOT, 'scripts', 'install-system-deps.sh');

/** Runs the script with a PATH holding only the named commands (so the tools look missing). */
function runWith(commands: string[], env: Record<string, string> = {}) {
  const bin = mkdtempSync(join(tmpdir(), 'ha-broker-sysdeps-'));
  try {
    for (const c of commands) {
      const found = spawnSync('bash', ['-c', `command -v ${c}`], { encoding: 'utf8' }).stdout.trim();
      assert.ok(found, `${c} is on this machine`);
      symlinkSync(found, join(bin, c));
    }
    return spawnSync('/bin/bash', [SCRIPT], { encoding: 'utf8', env: { PATH: bin, REDIS_SERVER: join(bin, 'no-redis-server'), ...env }, timeout: 30_000 });
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
}

test('missing tools and no apt-get: exit 1 at once, one message naming every missing package and the command', () => {
  const r = runWith(['id', 'mktemp', 'tail', 'rm']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /needs the Debian package\(s\) yamllint redis-server buildah gnupg/);
  assert.match(r.stderr, /apt-get install -y --no-install-recommends yamllint redis-server buildah gnupg/);
  assert.match(r.stderr, /no apt-get/);
  assert.equal(r.stderr.trim().split('\n').length, 2, 'one message, not a cascade');
});

test('nothing missing: exit 0 and silent', () => {
  const bin = mkdtempSync(join(tmpdir(), 'ha-broker-sysdeps-'));
  try {
    // Stand-ins for the tools: the script only asks whether they are there.
    for (const t of ['yamllint', 'buildah', 'gpg']) symlinkSync('/bin/true', join(bin, t));
    const r = spawnSync('/bin/bash', [SCRIPT], { encoding: 'utf8', env: { PATH: bin, REDIS_SERVER: '/bin/true' } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr + r.stdout, '');
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
