// `broker demo --universal` as a process (issue 20 item 6): the demo Snyk API, the dispatcher,
// 3 servers behind the balancer and 3 Universal client replicas in HA mode. With --json the demo
// prints one status line a second; traffic must succeed on both connections, each served by every
// replica, and SIGTERM must stop everything it started and exit 0.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { ProcessGroup } from '../support/processes.js';
import { CLI } from '../support/paths.js';
import { waitFor } from '../support/wait.js';

interface ConnectionStatus {
  name: string;
  type: string;
  tunnels: number;
  ok: number;
  failed: number;
  failures: Record<string, number>;
  originServed: number;
}

interface Status {
  event: 'status';
  mode: string;
  api: { tokens: number; lists: number; allocations: number; refused: number };
  connections: ConnectionStatus[];
  replicas: Array<{ name: string; pid?: number; state: string; connections: Record<string, { server?: string; tunnels: number; served: number }> }>;
  processes: Array<{ name: string; pid?: number; state: string }>;
}

interface Done {
  event: 'done';
  connections: Array<{ name: string; ok: number; failed: number }>;
  logs: string;
}

const group = new ProcessGroup();
let logsDir: string | undefined;

after(async () => {
  // SIGTERM, so a demo left running by a failed assertion still stops what it started (SIGKILL would orphan them).
  await Promise.all(group.all().map((p) => p.stop(60_000)));
  if (logsDir) await rm(logsDir, { recursive: true, force: true });
});

function events(out: string): Array<Record<string, unknown>> {
  return out
    .split('\n')
    .filter((l) => l.startsWith('{"event"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('the Universal demo serves both connections from every replica, then stops cleanly on SIGTERM', async () => {
  // --duration bounds the demo should the test die before stopping it.
  const demo = group.spawnNode('demo-universal', CLI, ['demo', '--universal', '--json', '--duration', '180'], {});
  const status = await waitFor(
    'traffic on both connections, each served by all 3 replicas',
    () => {
      const last = events(demo.output()).filter((e): e is Status & Record<string, unknown> => e.event === 'status').at(-1);
      if (!last || last.connections.length !== 2) return undefined;
      const busy = last.connections.every((c) => c.tunnels === 6 && c.ok >= 40);
      const spread = last.replicas.length === 3 && last.replicas.every((r) => last.connections.every((c) => (r.connections[c.name]?.served ?? 0) > 0));
      return busy && spread ? last : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 500 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${demo.output().slice(-3000)}`);
  });

  assert.equal(status.mode, 'universal');
  assert.deepEqual(status.connections.map((c) => c.type).sort(), ['github', 'gitlab']);
  for (const c of status.connections) {
    assert.equal(c.failed, 0, `${c.name} failures: ${JSON.stringify(c.failures)}`);
    // Every ok answer came from that connection's own origin.
    assert.ok(c.originServed >= c.ok, `${c.name}: origin served ${c.originServed}, platform saw ${c.ok} ok`);
  }
  for (const r of status.replicas) {
    assert.equal(r.state, 'serving', r.name);
    for (const c of status.connections) assert.match(r.connections[c.name]?.server ?? '', /^[0-2]$/, `${r.name} has a server for ${c.name}`);
  }
  assert.equal(status.api.tokens, 3, 'one OAuth token per replica');
  assert.ok(status.api.allocations >= 6, `allocations through Snyk's API: ${status.api.allocations}`);
  assert.equal(status.api.refused, 0);
  const pids = status.processes.map((p) => p.pid).filter((p): p is number => typeof p === 'number');
  assert.equal(pids.length, 7, 'dispatcher, 3 servers, 3 replicas');

  const code = await demo.stop(60_000);
  assert.equal(code, 0, demo.output().slice(-3000));
  const done = events(demo.output()).find((e): e is Done & Record<string, unknown> => e.event === 'done');
  assert.ok(done, 'a done line');
  logsDir = done.logs;
  for (const c of done.connections) {
    assert.ok(c.ok >= 40, `${c.name} ok ${c.ok}`);
    assert.equal(c.failed, 0, `${c.name} failed during the run or the shutdown`);
  }
  assert.deepEqual(pids.filter(alive), [], 'no process of the demo is left');
});
