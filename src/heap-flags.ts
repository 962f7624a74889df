/**
 * Caps V8's young generation for the long-running programs (client, server, dispatcher) when the
 * operator has not chosen a size: with Node's defaults a semi-space grows to 32-64 MiB under
 * steady load and stays there, which was most of the RSS after load (bench/README.md, rounds 2
 * and 6). The image sets `--max-semi-space-size=8` in NODE_OPTIONS; this gives a plain
 * `node dist/cli.js server` (or the `broker` bin) the same heap.
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
 * The same re-execution adds `--expose-gc` for the idle collection (src/idle-collection.ts) unless
 * BROKER_NODE_IDLE_GC is off or the flag is already there: that is the one way to get V8's full
 * collection that costs nothing under load (handing it over through a throwaway vm context
 * made every relayed request 10-15 % dearer, bench/README.md round 7).
 */

import { isOff } from './config/env.js';

/** Semi-space size (MiB) the image ships with (Dockerfile NODE_OPTIONS). */
export const SEMI_SPACE_MIB = 8;

/** The commands that run until stopped; a one-shot command (preflight, --help) is left alone. */
const LONG_RUNNING = new Set(['client', 'server', 'dispatcher']);

const SEMI_SPACE_FLAG = /(?:^|\s)--(?:max|min)[-_]semi[-_]space[-_]size(?:[=\s]|$)/;
const EXPOSE_GC_FLAG = /(?:^|\s)--expose[-_]gc(?:[=\s]|$)/;

export interface YoungGenerationInput {
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
 * long-running command, the operator chose a semi-space size (or opted out), or no execve.
 */
export function youngGenerationArgv(input: YoungGenerationInput): string[] | undefined {
  const { execArgv, argv, env } = input;
  if (!input.canExec) return undefined;
  if (!LONG_RUNNING.has(argv[2] ?? '')) return undefined;
  const present = (flag: RegExp) => flag.test(env.NODE_OPTIONS ?? '') || execArgv.some((a) => flag.test(a));
  const flags: string[] = [];
  if ((env.BROKER_NODE_YOUNG_GENERATION ?? '').trim().toLowerCase() !== 'default' && !present(SEMI_SPACE_FLAG)) flags.push(`--max-semi-space-size=${SEMI_SPACE_MIB}`);
  // An invalid value counts as on here; the program's config check stops it with exit 2 anyway.
  if (!isOff(env.BROKER_NODE_IDLE_GC?.trim()) && !present(EXPOSE_GC_FLAG)) flags.push('--expose-gc');
  if (flags.length === 0) return undefined;
  return [argv[0], ...flags, ...execArgv, ...argv.slice(1)];
}

type Execve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;

/** Re-executes this process with the cap when youngGenerationArgv says so; returns if not (or if execve fails). */
export function capYoungGeneration(): void {
  const execve = (process as unknown as { execve?: Execve }).execve;
  const args = youngGenerationArgv({ execArgv: process.execArgv, argv: process.argv, env: process.env, canExec: typeof execve === 'function' });
  if (!args) return;
  try {
    execve!.call(process, process.execPath, args, process.env);
  } catch {
    // execve refused (a sandbox, a missing binary): run on with Node's defaults.
  }
}
