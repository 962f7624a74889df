// The young-generation cap at startup (issue 23): only for the long-running commands, only when the
// operator chose no semi-space size, and it really re-executes in place where Node can.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SEMI_SPACE_MIB, youngGenerationArgv, type YoungGenerationInput } from '../../src/young-generation.js';

const NODE = '/opt/node/bin/node';
const base = (over: Partial<YoungGenerationInput> = {}): YoungGenerationInput => ({
  execArgv: [],
  argv: [NODE, '/app/dist/cli.js', 'server'],
  env: {},
  canExec: true,
  ...over,
});

test('a long-running command with no semi-space flag is re-executed with the cap, its own flags and arguments kept', () => {
  for (const command of ['client', 'server', 'dispatcher']) {
    assert.deepEqual(youngGenerationArgv(base({ argv: [NODE, '/app/dist/cli.js', command, '--x'] })), [NODE, `--max-semi-space-size=${SEMI_SPACE_MIB}`, '--expose-gc', '/app/dist/cli.js', command, '--x']);
  }
  assert.deepEqual(
    youngGenerationArgv(base({ execArgv: ['--enable-source-maps'], env: { NODE_OPTIONS: '--max-old-space-size=512 --require ./x.cjs' } })),
    [NODE, '--max-semi-space-size=8', '--expose-gc', '--enable-source-maps', '/app/dist/cli.js', 'server'],
  );
});

test('--expose-gc is added for the idle collection unless BROKER_NODE_IDLE_GC is off or the flag is there already', () => {
  assert.deepEqual(youngGenerationArgv(base({ env: { BROKER_NODE_IDLE_GC: 'false' } })), [NODE, '--max-semi-space-size=8', '/app/dist/cli.js', 'server']);
  assert.deepEqual(youngGenerationArgv(base({ env: { BROKER_NODE_IDLE_GC: ' No ' } })), [NODE, '--max-semi-space-size=8', '/app/dist/cli.js', 'server']);
  assert.deepEqual(youngGenerationArgv(base({ env: { BROKER_NODE_IDLE_GC: 'true' } })), [NODE, '--max-semi-space-size=8', '--expose-gc', '/app/dist/cli.js', 'server']);
  for (const NODE_OPTIONS of ['--expose-gc', '--x --expose_gc']) {
    assert.deepEqual(youngGenerationArgv(base({ env: { NODE_OPTIONS } })), [NODE, '--max-semi-space-size=8', '/app/dist/cli.js', 'server'], NODE_OPTIONS);
  }
  assert.deepEqual(youngGenerationArgv(base({ execArgv: ['--expose-gc'] })), [NODE, '--max-semi-space-size=8', '--expose-gc', '/app/dist/cli.js', 'server']);
  // The operator's semi-space size alone still gets the gc flag; both flags there: nothing to do (the image).
  assert.deepEqual(youngGenerationArgv(base({ env: { NODE_OPTIONS: '--max-semi-space-size=16' } })), [NODE, '--expose-gc', '/app/dist/cli.js', 'server']);
  assert.equal(youngGenerationArgv(base({ env: { NODE_OPTIONS: '--max-semi-space-size=8 --expose-gc' } })), undefined);
  assert.equal(youngGenerationArgv(base({ env: { BROKER_NODE_YOUNG_GENERATION: 'default', BROKER_NODE_IDLE_GC: 'false' } })), undefined);
  assert.deepEqual(youngGenerationArgv(base({ env: { BROKER_NODE_YOUNG_GENERATION: 'default' } })), [NODE, '--expose-gc', '/app/dist/cli.js', 'server']);
});

test('one-shot commands, help and version are left alone', () => {
  for (const argv of [[NODE, 'cli.js'], [NODE, 'cli.js', 'preflight'], [NODE, 'cli.js', '--help'], [NODE, 'cli.js', '--version'], [NODE, 'cli.js', 'demo']]) {
    assert.equal(youngGenerationArgv(base({ argv })), undefined, argv.join(' '));
  }
});

/** The idle collection off, so only the semi-space decision is left. */
const OFF = { BROKER_NODE_IDLE_GC: 'false' };

test("the operator's own semi-space size wins, in NODE_OPTIONS or on node's command line, in any spelling", () => {
  for (const NODE_OPTIONS of ['--max-semi-space-size=8', '--max-semi-space-size=64', '--x --max_semi_space_size=4', '--min-semi-space-size=2', '--max-semi-space-size 16']) {
    assert.equal(youngGenerationArgv(base({ env: { NODE_OPTIONS, ...OFF } })), undefined, NODE_OPTIONS);
  }
  for (const execArgv of [['--max-semi-space-size=32'], ['--max_semi_space_size', '32'], ['--min-semi-space-size=1']]) {
    assert.equal(youngGenerationArgv(base({ execArgv, env: OFF })), undefined, execArgv.join(' '));
  }
  // A flag that only starts the same way is not a semi-space size.
  assert.notEqual(youngGenerationArgv(base({ env: { NODE_OPTIONS: '--max-semi-space-sizes=1', ...OFF } })), undefined);
});

test('BROKER_NODE_YOUNG_GENERATION=default keeps Node defaults; a Node without execve runs on as is', () => {
  assert.equal(youngGenerationArgv(base({ env: { BROKER_NODE_YOUNG_GENERATION: 'default', ...OFF } })), undefined);
  assert.equal(youngGenerationArgv(base({ env: { BROKER_NODE_YOUNG_GENERATION: ' Default ', ...OFF } })), undefined);
  assert.notEqual(youngGenerationArgv(base({ env: { BROKER_NODE_YOUNG_GENERATION: '', ...OFF } })), undefined);
  assert.equal(youngGenerationArgv(base({ canExec: false })), undefined);
});

test('capYoungGeneration replaces the process in place: same pid, the flag in effect, once', { skip: typeof (process as { execve?: unknown }).execve !== 'function' && 'no process.execve in this Node' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'young-gen-'));
  try {
    const script = join(dir, 'probe.mjs');
    const moduleUrl = pathToFileURL(join(import.meta.dirname, '../../src/young-generation.js')).href;
    await writeFile(script, `import v8 from 'node:v8';
import { capYoungGeneration } from ${JSON.stringify(moduleUrl)};
process.env.PROBE_RUNS = String(Number(process.env.PROBE_RUNS ?? 0) + 1);
capYoungGeneration();
console.log(JSON.stringify({ pid: process.pid, execArgv: process.execArgv, argv: process.argv.slice(2), runs: process.env.PROBE_RUNS, newSpace: v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size }));
`);
    const run = (env: NodeJS.ProcessEnv) =>
      new Promise<{ pid: number; out: { pid: number; execArgv: string[]; argv: string[]; runs: string } }>((resolve, reject) => {
        const child = execFile(process.execPath, [script, 'server', 'extra'], { env: { PATH: process.env.PATH, ...env } }, (err, stdout) => {
          if (err) reject(err);
          else resolve({ pid: child.pid!, out: JSON.parse(stdout.trim()) });
        });
      });
    const capped = await run({});
    assert.equal(capped.out.pid, capped.pid, 'same process');
    assert.deepEqual(capped.out.execArgv, ['--max-semi-space-size=8', '--expose-gc']);
    assert.deepEqual(capped.out.argv, ['server', 'extra']);
    assert.equal(capped.out.runs, '2', 'the module ran once before the re-execution and once after, not again');
    const own = await run({ NODE_OPTIONS: '--max-semi-space-size=4', BROKER_NODE_IDLE_GC: 'false' });
    assert.deepEqual(own.out.execArgv, []);
    assert.equal(own.out.runs, '1');
    const image = await run({ NODE_OPTIONS: '--max-semi-space-size=8 --expose-gc' });
    assert.deepEqual(image.out.execArgv, [], "the image's NODE_OPTIONS has both: no re-execution");
    assert.equal(image.out.runs, '1');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
