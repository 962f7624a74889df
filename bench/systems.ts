import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { ProcessGroup, type RunningProcess } from '../test/support/processes.js';
import { startSnykBroker } from '../test/support/snyk-broker.js';
import { freePort } from '../test/support/ports.js';
import { waitFor } from '../test/support/wait.js';

export const TOKEN = '3d6f0c4a-2b1e-4f5a-9c8d-7e6f5a4b3c2d';

export interface System {
  name: string;
  /** Base URL the "platform" calls: requests go to `${platform}/<path>`. */
  platform: string;
  client?: RunningProcess;
  server?: RunningProcess;
  stop(): Promise<void>;
}

async function acceptFiles(originUrl: string) {
  const dir = await mkdtemp(join(tmpdir(), 'bench-'));
  const server = join(dir, 'server-accept.json');
  const client = join(dir, 'client-accept.json');
  await writeFile(server, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [{ method: 'any', path: '/*', origin: originUrl }] }));
  await writeFile(client, JSON.stringify({ private: [{ method: 'any', path: '/*', origin: '${ORIGIN_URL}' }], public: [{ method: 'any', path: '/*' }] }));
  return { server, client };
}

async function waitReady(platform: string): Promise<void> {
  await waitFor(`${platform} to relay`, async () => {
    const res = await request(`${platform}/small`, { headersTimeout: 2_000, bodyTimeout: 2_000 });
    await res.body.dump();
    return res.statusCode === 200;
  }, { timeoutMs: 60_000, intervalMs: 250 });
}

export function directSystem(originUrl: string): System {
  return { name: 'direct', platform: originUrl, stop: async () => {} };
}

export interface PairOptions {
  /** Our CLI to run (default dist/cli.js): A/B runs compare two builds. */
  cli?: string;
  /** Extra environment for our server and client (e.g. NODE_OPTIONS). */
  env?: Record<string, string>;
  name?: string;
}

/** One broker server and one client, either the real snyk-broker or ours. */
export async function brokerPair(kind: 'ours' | 'snyk-broker', originUrl: string, options: PairOptions = {}): Promise<System> {
  const group = new ProcessGroup();
  const files = await acceptFiles(originUrl);
  const serverPort = await freePort();
  const clientPort = await freePort();
  const extra = kind === 'ours' ? (options.env ?? {}) : {};
  const serverEnv = { PORT: String(serverPort), ACCEPT: files.server, LOG_LEVEL: 'error', ...extra };
  const clientEnv = {
    BROKER_TOKEN: TOKEN,
    BROKER_SERVER_URL: `http://127.0.0.1:${serverPort}`,
    BROKER_CLIENT_URL: `http://127.0.0.1:${clientPort}`,
    PORT: String(clientPort),
    ACCEPT: files.client,
    ORIGIN_URL: originUrl,
    PREFLIGHT_CHECKS_ENABLED: 'false',
    LOG_LEVEL: 'error',
    ...extra,
  };
  const ours = (name: string, command: string, env: Record<string, string | undefined>) =>
    options.cli ? group.spawnNode(name, options.cli, [command], env) : group.broker(name, command, env);
  const server = kind === 'ours' ? ours('server', 'server', serverEnv) : await startSnykBroker(group, 'server', 'server', serverEnv);
  await waitFor('server health', async () => {
    const res = await request(`http://127.0.0.1:${serverPort}/healthcheck`);
    await res.body.dump();
    return res.statusCode === 200;
  }, { timeoutMs: 30_000, intervalMs: 100 });
  const client = kind === 'ours' ? ours('client', 'client', clientEnv) : await startSnykBroker(group, 'client', 'client', clientEnv);
  const platform = `http://127.0.0.1:${serverPort}/broker/${TOKEN}`;
  await waitReady(platform);
  return { name: options.name ?? kind, platform, client, server, stop: () => group.stopAll() };
}
