#!/usr/bin/env node
// First: may re-execute node with the heap flags the programs run with (src/heap-flags.ts).
import './heap-flags-start.js';
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, CONFIG_EXIT_CODE } from './config/errors.js';
import type { Program } from './program.js';
import { VERSION } from './version.js';
import { loadRuntimeConfig } from './config/runtime.js';
import { fullCollection, startIdleCollection } from './idle-collection.js';
import { CLIENT_ENV_HELP } from './config/client-help.js';
import { SERVER_ENV_HELP } from './config/server-help.js';
import { DISPATCHER_ENV_HELP } from './config/dispatcher-help.js';

type Starter = (env: NodeJS.ProcessEnv) => Promise<Program>;

/**
 * Runs one program until SIGTERM/SIGINT. A configuration error exits 2 with the message;
 * a second signal exits at once (an operator who presses Ctrl-C twice means it).
 */
async function run(start: Starter): Promise<void> {
  let program: Program;
  let idleCollection: boolean;
  try {
    ({ idleCollection } = loadRuntimeConfig(process.env));
    program = await start(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(CONFIG_EXIT_CODE);
    }
    process.stderr.write(`failed to start: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  }
  const idle = startIdle(idleCollection, program);
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    idle?.stop();
    program.stop(signal).then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`error while stopping: ${(err as Error)?.stack ?? String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await program.done;
}

/** The idle collection beside a long-running program (BROKER_NODE_IDLE_GC), when this Node can run one. */
function startIdle(enabled: boolean, program: Program): { stop(): void } | undefined {
  const collect = enabled ? fullCollection() : undefined;
  if (!collect) return undefined;
  const mib = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;
  return startIdleCollection({
    collect,
    onCollect: (r) => program.logger?.debug({ heapBeforeMiB: mib(r.heapBeforeBytes), heapAfterMiB: mib(r.heapAfterBytes), durationMs: Math.round(r.durationMs) }, 'idle after a busy spell: full garbage collection'),
  });
}

const cli = new Command('broker')
  .description('ha-broker: a Snyk Broker compatible client, server and dispatcher with high availability')
  .version(VERSION);

cli
  .command('client')
  .description('run the broker client: tunnels to the broker server, relays allowed requests to internal systems')
  .addHelpText('after', CLIENT_ENV_HELP)
  .action(async () => run(async (env) => (await import('./client/main.js')).startClient(env)));

cli
  .command('preflight')
  .description('run the broker client preflight checks once and exit non-zero when one fails')
  .action(async () => {
    const { runPreflightCommand } = await import('./client/main.js');
    try {
      process.exitCode = await runPreflightCommand(process.env);
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`${err.message}\n`);
        process.exit(CONFIG_EXIT_CODE);
      }
      throw err;
    }
  });

cli
  .command('server')
  .description('run the broker server: accepts client tunnels and serves the platform-side HTTP API')
  .addHelpText('after', SERVER_ENV_HELP)
  .action(async () => run(async (env) => (await import('./server/main.js')).startServer(env)));

cli
  .command('dispatcher')
  .description('run the broker dispatcher: allocates HA clients to broker servers')
  .addHelpText('after', DISPATCHER_ENV_HELP)
  .action(async () => run(async (env) => (await import('./dispatcher/main.js')).startDispatcher(env)));

/** --duration: a positive number of seconds. */
function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('a positive number of seconds');
  return n;
}

cli
  .command('demo')
  .description('run a complete local HA system (dispatcher, 3 servers, 5 clients, an origin) with live traffic')
  .option('--universal', 'Universal Broker instead: a demo Snyk API serving a github and a gitlab connection, 3 Universal client replicas in HA mode serving both')
  .option('--duration <seconds>', 'stop by itself after this long (as on SIGTERM)', seconds)
  .option('--json', 'one JSON status line a second instead of the table (for scripts and tests)')
  .addHelpText('after', '\nKeys: 1-5 (1-3 with --universal) kill -9 that client, r restarts killed clients, q or Ctrl-C stops everything. Logs of every process stay in the temporary folder it names.')
  .action(async (o: { universal?: boolean; duration?: number; json?: boolean }) => {
    const opts = { durationSeconds: o.duration, json: o.json };
    if (o.universal) await (await import('./demo/universal-main.js')).runUniversalDemo(opts);
    else await (await import('./demo/main.js')).runDemo(opts);
  });

await cli.parseAsync(process.argv);
