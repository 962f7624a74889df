import { execFileSync } from 'node:child_process';
import { writeFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import { SNYK_BROKER_CLI, SNYK_BROKER_DIR } from './paths.js';
import type { ProcessGroup, RunningProcess } from './processes.js';

/**
 * The npm tarball of snyk-broker ships no config.default.json and refuses to start without
 * one (protocol.md §9); this writes the minimal verified file next to its dist/.
 */
export async function ensureSnykBrokerConfig(): Promise<void> {
  const file = join(SNYK_BROKER_DIR, 'config.default.json');
  try {
    await access(file);
    return;
  } catch {
    // write it below
  }
  const config = {
    DISPATCHER_URL_PREFIX: '/hidden/broker',
    REMOTE_WORKLOAD_NAME: 'BrokerWorkload',
    REMOTE_WORKLOAD_MODULE_PATH: '../broker-workload/websocketRequests',
    CLIENT_WORKLOAD_NAME: 'BrokerClientRequestWorkload',
    CLIENT_WORKLOAD_MODULE_PATH: '../broker-workload/clientLocalRequests',
    BROKER_CLIENT_CONFIGURATION: {
      common: { default: { BROKER_SERVER_URL: 'https://broker.snyk.io', BROKER_HEALTHCHECK_PATH: '/healthcheck' }, required: {} },
    },
  };
  await writeFile(file, JSON.stringify(config, null, 2));
}

/**
 * The node binary for the real snyk-broker: its server crashes on Node 24 as soon as a tunnel
 * arrives (primus' no-cache middleware reads `res._headers`, gone in Node 24), so when the tests
 * run on Node ≥ 24 it runs on the machine's Node 20 if there is one. SNYK_BROKER_NODE overrides.
 */
let chosenNode: string | undefined;
export function snykBrokerNode(): string {
  chosenNode ??= pickSnykBrokerNode();
  return chosenNode;
}

function pickSnykBrokerNode(): string {
  if (process.env.SNYK_BROKER_NODE) return process.env.SNYK_BROKER_NODE;
  if (Number(process.versions.node.split('.')[0]) < 24) return process.execPath;
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    try {
      const out = execFileSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8', timeout: 10_000 }).trim();
      if (Number(out.split('.')[0]) < 24) return candidate;
    } catch {
      // not there; try the next one
    }
  }
  return process.execPath;
}

/** Starts the real snyk-broker (`server` or `client`) with `env`. */
export async function startSnykBroker(group: ProcessGroup, name: string, role: 'server' | 'client', env: Record<string, string | undefined>): Promise<RunningProcess> {
  await ensureSnykBrokerConfig();
  return group.spawnNode(name, SNYK_BROKER_CLI, [role], env, snykBrokerNode());
}
