// The heap flags at startup (issue 23): only for the long-running commands, only when the operator
// chose none of their own, and it really re-executes in place where Node can.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../../src/config/errors.js';
import { loadRuntimeConfig } from '../../src/config/runtime.js';
import { SEMI_SPACE_MIB, SERVER_HEAP_GROWING_PERCENT, heapFlagsArgv, type HeapFlagsInput } from '../../src/heap-flags.js';

const NODE = '/opt/node/bin/node';
// The client: the young generation and --expose-gc, which all three programs get (the server's
// own old-generation flag has its tests below).
const base = (over: Partial<HeapFlagsInput> = {}): HeapFlagsInput => ({
  execArgv: [],
  argv: [NODE, '/app/dist/cli.js', 'client'],
  env: {},
  canExec: true,
  ...over,
});

test('a long-running command with no semi-space flag is re-executed with the cap, its own flags and arguments kept', () => {
  for (const command of ['client', 'server', 'dispatcher']) {
    const server = command === 'server' ? [`--heap-growing-percent=${SERVER_HEAP_GROWING_PERCENT}`] : [];
    assert.deepEqual(heapFlagsArgv(base({ argv: [NODE, '/app/dist/cli.js', command, '--x'] })), [NODE, `--max-semi-space-size=${SEMI_SPACE_MIB}`, ...server, '--expose-gc', '/app/dist/cli.js', command, '--x']);
  }
  assert.deepEqual(
    heapFlagsArgv(base({ execArgv: ['--enable-source-maps'], env: { NODE_OPTIONS: '--max-old-space-size=512 --require ./x.cjs' } })),
    [NODE, '--max-semi-space-size=8', '--expose-gc', '--enable-source-maps', '/app/dist/cli.js', 'client'],
  );
});

test('--expose-gc is added for the idle collection unless BROKER_NODE_IDLE_GC is off or the flag is there already', () => {
  assert.deepEqual(heapFlagsArgv(base({ env: { BROKER_NODE_IDLE_GC: 'false' } })), [NODE, '--max-semi-space-size=8', '/app/dist/cli.js', 'client']);
  assert.deepEqual(heapFlagsArgv(base({ env: { BROKER_NODE_IDLE_GC: ' No ' } })), [NODE, '--max-semi-space-size=8', '/app/dist/cli.js', 'client']);
  assert.deepEqual(heapFlagsArgv(base({ env: { BROKER_NODE_IDLE_GC: 'true' } })), [NODE, '--max-semi-space-size=8', '--expose-gc', '/app/dist/cli.js', 'client']);
  for (const NODE_OPTIONS of ['--expose-gc', '--x --expose_gc']) {
    assert.deepEqual(heapFlagsArgv(base({ env: { NODE_OPTIONS } })), [NODE, '--max-semi-space-size=8', '/app/dist/cli.js', 'client'], NODE_OPTIONS);
  }
  assert.deepEqual(heapFlagsArgv(base({ execArgv: ['--expose-gc'] })), [NODE, '--max-semi-space-size=8', '--expose-gc', '/app/dist/cli.js', 'client']);
  // The operator's semi-space size alone still gets the gc flag; both flags there: nothing to do (the image).
  assert.deepEqual(heapFlagsArgv(base({ env: { NODE_OPTIONS: '--max-semi-space-size=16' } })), [NODE, '--expose-gc', '/app/dist/cli.js', 'client']);
  assert.equal(heapFlagsArgv(base({ env: { NODE_OPTIONS: '--max-semi-space-size=8 --expose-gc' } })), undefined);
  assert.equal(heapFlagsArgv(base({ env: { BROKER_NODE_YOUNG_GENERATION: 'default', BROKER_NODE_IDLE_GC: 'false' } })), undefined);
  assert.deepEqual(heapFlagsArgv(base({ env: { BROKER_NODE_YOUNG_GENERATION: 'default' } })), [NODE, '--expose-gc', '/app/dist/cli.js', 'client']);
});

const SERVER = [NODE, '/app/dist/cli.js', 'server'];
const IMAGE = { NODE_OPTIONS: '--max-semi-space-size=8 --expose-gc' };

test("the server alone also gets a bounded old-generation growth, unless node's command line or BROKER_NODE_OLD_GENERATION=default says otherwise", () => {
  assert.equal(SERVER_HEAP_GROWING_PERCENT, 150);
  // The image's NODE_OPTIONS cannot carry it (node refuses the flag there): the server re-executes for it alone.
  assert.deepEqual(heapFlagsArgv(base({ argv: SERVER, env: IMAGE })), [NODE, '--heap-growing-percent=150', '/app/dist/cli.js', 'server']);
  assert.equal(heapFlagsArgv(base({ env: IMAGE })), undefined, 'the client in the image: nothing to do');
  assert.equal(heapFlagsArgv(base({ argv: [NODE, '/app/dist/cli.js', 'dispatcher'], env: IMAGE })), undefined);
  for (const execArgv of [['--heap-growing-percent=300'], ['--heap_growing_percent', '50']]) {
    assert.equal(heapFlagsArgv(base({ argv: SERVER, execArgv, env: IMAGE })), undefined, execArgv.join(' '));
  }
  for (const value of ['default', ' DEFAULT ']) {
    assert.equal(heapFlagsArgv(base({ argv: SERVER, env: { ...IMAGE, BROKER_NODE_OLD_GENERATION: value } })), undefined, value);
  }
  // Each setting on its own: the young generation's opt-out leaves the server's growth flag in.
  assert.deepEqual(heapFlagsArgv(base({ argv: SERVER, env: { BROKER_NODE_YOUNG_GENERATION: 'default', BROKER_NODE_IDLE_GC: 'false' } })), [NODE, '--heap-growing-percent=150', '/app/dist/cli.js', 'server']);
  assert.deepEqual(heapFlagsArgv(base({ argv: SERVER, env: { BROKER_NODE_OLD_GENERATION: 'default' } })), [NODE, '--max-semi-space-size=8', '--expose-gc', '/app/dist/cli.js', 'server']);
});

test('BROKER_NODE_YOUNG_GENERATION and BROKER_NODE_OLD_GENERATION: unset, capped or default; anything else stops the program (exit 2)', () => {
  assert.deepEqual(loadRuntimeConfig({ BROKER_NODE_YOUNG_GENERATION: 'Default', BROKER_NODE_OLD_GENERATION: 'capped' }), { idleCollection: true });
  for (const name of ['BROKER_NODE_YOUNG_GENERATION', 'BROKER_NODE_OLD_GENERATION']) {
    assert.throws(() => loadRuntimeConfig({ [name]: 'defualt' }), (e: unknown) => e instanceof ConfigError && e.message.includes(name) && e.message.includes('defualt'));
  }
});

test('one-shot commands, help and version are left alone', () => {
  for (const argv of [[NODE, 'cli.js'], [NODE, 'cli.js', 'preflight'], [NODE, 'cli.js', '--help'], [NODE, 'cli.js', '--version'], [NODE, 'cli.js', 'demo']]) {
    assert.equal(heapFlagsArgv(base({ argv })), undefined, argv.join(' '));
  }
});

/** The idle collection off, so only the semi-space decision is left. */
const OFF = { BROKER_NODE_IDLE_GC: 'false' };

test("the operator's own semi-space size wins, in NODE_OPTIONS or on node's command line, in any spelling", () => {
  for (const NODE_OPTIONS of ['--max-semi-space-size=8', '--max-semi-space-size=64', '--x --max_semi_space_size=4', '--min-semi-space-size=2', '--max-semi-space-size 16']) {
    assert.equal(heapFlagsArgv(base({ env: { NODE_OPTIONS, ...OFF } })), undefined, NODE_OPTIONS);
  }
  for (const execArgv of [['--max-semi-space-size=32'], ['--max_semi_space_size', '32'], ['--min-semi-space-size=1']]) {
    assert.equal(heapFlagsArgv(base({ execArgv, env: OFF })), undefined, execArgv.join(' '));
  }
  // A flag that only starts the same way is not a semi-space size.
  assert.notEqual(heapFlagsArgv(base({ env: { NODE_OPTIONS: '--max-semi-space-sizes=1', ...OFF } })), undefined);
});

test('BROKER_NODE_YOUNG_GENERATION=default keeps Node defaults; a Node without execve runs on as is', () => {
  assert.equal(heapFlagsArgv(base({ env: { BROKER_NODE_YOUNG_GENERATION: 'default', ...OFF } })), undefined);
  assert.equal(heapFlagsArgv(base({ env: { BROKER_NODE_YOUNG_GENERATION: ' Default ', ...OFF } })), undefined);
  assert.notEqual(heapFlagsArgv(base({ env: { BROKER_NODE_YOUNG_GENERATION: '', ...OFF } })), undefined);
  assert.equal(heapFlagsArgv(base({ canExec: false })), undefined);
});

test('applyHeapFlags replaces the process in place: same pid, the flags in effect, once', { skip: typeof (process as { execve?: unknown }).execve !== 'function' && 'no process.execve in this Node' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'heap-flags-'));
  try {
    const script = join(dir, 'probe.mjs');
    const moduleUrl = pathToFileURL(join(import.meta.dirname, '../../src/heap-flags.js')).href;
    await writeFile(script, `import v8 from 'node:v8';
import { applyHeapFlags } from ${JSON.stringify(moduleUrl)};
process.env.PROBE_RUNS = String(Number(process.env.PROBE_RUNS ?? 0) + 1);
applyHeapFlags();
console.log(JSON.stringify({ pid: process.pid, execArgv: process.execArgv, argv: process.argv.slice(2), runs: process.env.PROBE_RUNS, newSpace: v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size }));
`);
    const run = (command: string, env: NodeJS.ProcessEnv) =>
      new Promise<{ pid: number; out: { pid: number; execArgv: string[]; argv: string[]; runs: string } }>((resolve, reject) => {
        const child = execFile(process.execPath, [script, command, 'extra'], { env: { PATH: process.env.PATH, ...env } }, (err, stdout) => {
          if (err) reject(err);
          else resolve({ pid: child.pid!, out: JSON.parse(stdout.trim()) });
        });
      });
    const capped = await run('client', {});
    assert.equal(capped.out.pid, capped.pid, 'same process');
    assert.deepEqual(capped.out.execArgv, ['--max-semi-space-size=8', '--expose-gc']);
    assert.deepEqual(capped.out.argv, ['client', 'extra']);
    assert.equal(capped.out.runs, '2', 'the module ran once before the re-execution and once after, not again');
    const server = await run('server', {});
    assert.equal(server.out.pid, server.pid);
    assert.deepEqual(server.out.execArgv, ['--max-semi-space-size=8', '--heap-growing-percent=150', '--expose-gc'], 'node accepted the flag on its command line');
    assert.equal(server.out.runs, '2');
    const own = await run('client', { NODE_OPTIONS: '--max-semi-space-size=4', BROKER_NODE_IDLE_GC: 'false' });
    assert.deepEqual(own.out.execArgv, []);
    assert.equal(own.out.runs, '1');
    const image = await run('client', { NODE_OPTIONS: '--max-semi-space-size=8 --expose-gc' });
    assert.deepEqual(image.out.execArgv, [], "the image's NODE_OPTIONS has both: no re-execution");
    assert.equal(image.out.runs, '1');
    const imageServer = await run('server', { NODE_OPTIONS: '--max-semi-space-size=8 --expose-gc' });
    assert.deepEqual(imageServer.out.execArgv, ['--heap-growing-percent=150'], 'the image: the server re-executes for the growth flag alone');
    assert.equal(imageServer.out.runs, '2');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
