import { EnvReader, type Env } from './env.js';

/** Settings of the Node process itself, shared by the client, the server and the dispatcher. */
export interface RuntimeConfig {
  /** BROKER_NODE_IDLE_GC (default true): one full collection when the process goes idle after a busy spell (src/idle-collection.ts). */
  idleCollection: boolean;
}

/**
 * Reads the runtime settings; a bad value is a ConfigError (exit 2) like any other variable.
 * BROKER_NODE_YOUNG_GENERATION and BROKER_NODE_OLD_GENERATION take effect earlier, in the
 * start-up re-execution (src/heap-flags.ts), which cannot stop the process: they are checked here
 * so a typo does not pass unnoticed.
 */
export function loadRuntimeConfig(env: Env): RuntimeConfig {
  const r = new EnvReader(env);
  const idleCollection = r.bool('BROKER_NODE_IDLE_GC', true);
  for (const name of HEAP_SETTINGS) readHeapSetting(r, name);
  r.done();
  return { idleCollection };
}

/** The variables that choose between the programs' heap flags and Node's own (src/heap-flags.ts). */
export const HEAP_SETTINGS = ['BROKER_NODE_YOUNG_GENERATION', 'BROKER_NODE_OLD_GENERATION'] as const;

/**
 * `capped` (unset, or a bad value, which the reader records as a problem): the programs' flag;
 * `default`: Node's own. The one reading of these variables, for the re-execution and the check.
 */
export function readHeapSetting(r: EnvReader, name: (typeof HEAP_SETTINGS)[number]): 'capped' | 'default' {
  return r.enumOf(name, ['default', 'capped'], 'capped');
}
