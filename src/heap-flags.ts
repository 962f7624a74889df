/**
 * The V8 heap flags the long-running programs (client, server, dispatcher) run with. It caps V8's
 * young generation when the operator has not chosen a size: with Node's defaults a semi-space
 * grows to 32-64 MiB under steady load and stays there, which was most of the RSS after load
 * (bench/README.md, rounds 2 and 6). The image sets `--max-semi-space-size=8` in NODE_OPTIONS;
 * this gives a plain `node dist/cli.js server` (or the `broker` bin) the same heap.
 *
 * `v8.setFlagsFromString('--max-semi-space-size=8')` is too late: V8 sizes the heap when the
 * isolate is created and ignores the flag afterwards (measured on Node 24). So the process
 * replaces itself once, at the very start, with the same program and the flag on its command line
 * (`process.execve`: same pid, same stdio, no second process; Node ≥ 22.15 / 23.11). On a Node
 * without it (Node 20) nothing happens and the defaults stay.
 *
 * The operator's own choice always wins: any semi-space flag in NODE_OPTIONS or on node's command
 * line (`--max-semi-space-size`, `--min-semi-space-size`, with `-` or `_`) turns this off, and so
 * does `BROKER_NODE_YOUNG_GENERATION=default`.
 *
 * For the server it also adds `--heap-growing-percent=150`: between full collections its old
 * generation may grow to at most 2.5× what the last one left (V8's own factor goes up to 4×).
 * Under steady load that keeps ~30 MiB of garbage out of the server's RSS, which brings it under
 * snyk-broker's, for ~5 % more server CPU per request (bench/README.md, round 9). Node refuses the
 * flag in NODE_OPTIONS, so this is the one way to set it without changing the command; a
 * `--heap-growing-percent` on node's command line, or `BROKER_NODE_OLD_GENERATION=default`, keeps
 * the operator's (or V8's) own.
 *
 * The same re-execution adds `--expose-gc` for the idle collection (src/idle-collection.ts) unless
 * BROKER_NODE_IDLE_GC is off or the flag is already there: that is the one way to get V8's full
 * collection that costs nothing under load (handing it over through a throwaway vm context
 * made every relayed request 10-15 % dearer, bench/README.md round 7).
 */

import { EnvReader, isOff } from './config/env.js';
import { readHeapSetting, type HEAP_SETTINGS } from './config/runtime.js';

/** Semi-space size (MiB) the image ships with (Dockerfile NODE_OPTIONS). */
export const SEMI_SPACE_MIB = 8;

/** Old-generation growth (V8's --heap-growing-percent) the server runs with. */
export const SERVER_HEAP_GROWING_PERCENT = 150;

/** The commands that run until stopped; a one-shot command (preflight, --help) is left alone. */
const LONG_RUNNING = new Set(['client', 'server', 'dispatcher']);

const SEMI_SPACE_FLAG = /(?:^|\s)--(?:max|min)[-_]semi[-_]space[-_]size(?:[=\s]|$)/;
const EXPOSE_GC_FLAG = /(?:^|\s)--expose[-_]gc(?:[=\s]|$)/;
const HEAP_GROWING_FLAG = /(?:^|\s)--heap[-_]growing[-_]percent(?:[=\s]|$)/;

export interface HeapFlagsInput {
  /** process.execArgv: node's own flags on the command line. */
  execArgv: readonly string[];
  /** process.argv: [node, script, command, ...]. */
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  /** Whether this Node can replace the process in place (process.execve exists). */
  canExec: boolean;
}

/**
 * The argv to re-execute with (node's path first), or undefined to run on as is: not a
 * long-running command, every flag it would add is there already (or opted out), or no execve.
 */
export function heapFlagsArgv(input: HeapFlagsInput): string[] | undefined {
  const { execArgv, argv, env } = input;
  if (!input.canExec) return undefined;
  if (!LONG_RUNNING.has(argv[2] ?? '')) return undefined;
  const present = (flag: RegExp) => flag.test(env.NODE_OPTIONS ?? '') || execArgv.some((a) => flag.test(a));
  const flags: string[] = [];
  // A bad value reads as capped here; the program's config check stops it with exit 2.
  const settings = new EnvReader(env);
  const keepDefault = (name: (typeof HEAP_SETTINGS)[number]) => readHeapSetting(settings, name) === 'default';
  if (!keepDefault('BROKER_NODE_YOUNG_GENERATION') && !present(SEMI_SPACE_FLAG)) flags.push(`--max-semi-space-size=${SEMI_SPACE_MIB}`);
  if (argv[2] === 'server' && !keepDefault('BROKER_NODE_OLD_GENERATION') && !present(HEAP_GROWING_FLAG)) flags.push(`--heap-growing-percent=${SERVER_HEAP_GROWING_PERCENT}`);
  // An invalid value counts as on here; the program's config check stops it with exit 2 anyway.
  if (!isOff(env.BROKER_NODE_IDLE_GC?.trim()) && !present(EXPOSE_GC_FLAG)) flags.push('--expose-gc');
  if (flags.length === 0) return undefined;
  return [argv[0], ...flags, ...execArgv, ...argv.slice(1)];
}

type Execve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;

/** Re-executes this process with the flags when heapFlagsArgv says so; returns if not (or if execve fails). */
export function applyHeapFlags(): void {
  const execve = (process as unknown as { execve?: Execve }).execve;
  const args = heapFlagsArgv({ execArgv: process.execArgv, argv: process.argv, env: process.env, canExec: typeof execve === 'function' });
  if (!args) return;
  try {
    execve!.call(process, process.execPath, args, process.env);
  } catch {
    // execve refused (a sandbox, a missing binary): run on with Node's defaults.
  }
}
