import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadClientConfig, type ClientConfig } from '../../src/config/client.js';
import { createEgress, type Egress } from '../../src/http/egress.js';
import { createLogger, SecretScrubber } from '../../src/observability/logger.js';
import { createClient, type BrokerClient } from '../../src/client/main.js';
import { waitFor } from './wait.js';

export interface TestClient {
  client: BrokerClient;
  config: ClientConfig;
  port: number;
  url: string;
  egress: Egress;
  /** Every log line written so far (JSON text, already scrubbed). */
  lines: string[];
  logs(): Array<Record<string, unknown>>;
  waitForLog(msg: string | RegExp, filter?: (entry: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

export async function writeAcceptFile(accept: unknown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'client-accept-'));
  const file = join(dir, 'accept.json');
  await writeFile(file, JSON.stringify(accept));
  return file;
}

/** Our broker client built in-process on a free port with captured logs. */
export async function startTestClient(env: Record<string, string>, accept: unknown): Promise<TestClient> {
  const acceptFile = await writeAcceptFile(accept);
  const fullEnv = { PORT: '0', PREFLIGHT_CHECKS_ENABLED: 'false', LOG_LEVEL: 'debug', ACCEPT: acceptFile, ...env };
  const config = await loadClientConfig(fullEnv);
  const lines: string[] = [];
  const scrubber = new SecretScrubber();
  scrubber.add(...config.secrets);
  const logger = createLogger({ level: 'debug', scrubber, destination: { write: (s: string) => void lines.push(s) } });
  const egress = await createEgress({ caFiles: config.caFiles, rejectUnauthorized: config.rejectUnauthorized });
  const client = createClient(config, { logger, egress, env: config.env, host: '127.0.0.1', scrubber });
  const { port } = await client.start();
  const logs = () => lines.flatMap((l) => l.split('\n').filter(Boolean)).map((l) => JSON.parse(l) as Record<string, unknown>);
  let stopped = false;
  return {
    client,
    config,
    port,
    url: `http://127.0.0.1:${port}`,
    egress,
    lines,
    logs,
    waitForLog: (msg, filter = () => true, timeoutMs = 15_000) =>
      waitFor(`log line ${msg}`, () => logs().find((e) => (typeof msg === 'string' ? e.msg === msg : msg.test(String(e.msg))) && filter(e)), { timeoutMs }),
    async stop() {
      if (stopped) return;
      stopped = true;
      await client.stop('test');
      await egress.close();
    },
  };
}
