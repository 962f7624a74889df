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

/** Starts the real snyk-broker (`server` or `client`) with `env`. */
export async function startSnykBroker(group: ProcessGroup, name: string, role: 'server' | 'client', env: Record<string, string | undefined>): Promise<RunningProcess> {
  await ensureSnykBrokerConfig();
  return group.spawnNode(name, SNYK_BROKER_CLI, [role], env);
}
