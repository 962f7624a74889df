import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { ProcessGroup } from '../support/processes.js';
import { CLI } from '../support/paths.js';
import { freePort } from '../support/ports.js';
import { VERSION } from '../../src/version.js';

const group = new ProcessGroup();
after(() => group.stopAll());

test('a bad variable stops `broker server` with exit 2 naming it', async () => {
  const p = group.broker('bad-env', 'server', { PORT: 'eighty', SOCKET_PING_INTERVAL: 'often', ACCEPT: '/nonexistent/accept.json' });
  assert.equal(await p.exited, 2);
  for (const name of ['PORT', 'SOCKET_PING_INTERVAL', 'ACCEPT']) assert.match(p.output(), new RegExp(name));
});

test('`broker server --help` lists the variables with their defaults', async () => {
  const p = group.spawnNode('help', CLI, ['server', '--help'], {});
  assert.equal(await p.exited, 0);
  for (const text of ['PORT', '7341', 'DISPATCHER_URL', 'BROKER_SERVER_REQUEST_TIMEOUT_MS', 'BROKER_SERVER_DRAIN_GRACE_MS', 'SOCKET_MAX_RESPONSE_LENGTH']) {
    assert.ok(p.output().includes(text), `${text} missing from --help`);
  }
});

test('SIGTERM on an idle server exits 0 promptly and /healthcheck answered before', async () => {
  const port = await freePort();
  const p = group.broker('idle', 'server', { PORT: String(port) });
  await p.waitForOutput('broker server listening');
  const res = await fetch(`http://127.0.0.1:${port}/healthcheck`);
  assert.deepEqual(await res.json(), { ok: true, version: VERSION });
  const live = await fetch(`http://127.0.0.1:${port}/livez`);
  assert.equal(live.status, 200);
  p.kill('SIGTERM');
  assert.equal(await p.exited, 0);
  assert.match(p.output(), /broker server stopped/);
});
