import { EnvReader, type Env } from './env.js';

/** Settings of the Node process itself, shared by the client, the server and the dispatcher. */
export interface RuntimeConfig {
  /** BROKER_NODE_IDLE_GC (default true): one full collection when the process goes idle after a busy spell (src/idle-collection.ts). */
  idleCollection: boolean;
}

/** Reads the runtime settings; a bad value is a ConfigError (exit 2) like any other variable. */
export function loadRuntimeConfig(env: Env): RuntimeConfig {
  const r = new EnvReader(env);
  const idleCollection = r.bool('BROKER_NODE_IDLE_GC', true);
  r.done();
  return { idleCollection };
}
