import { loadServerConfig } from '../../src/config/server.js';
import { createEgress } from '../../src/http/egress.js';
import { silentLogger, type Logger } from '../../src/observability/logger.js';
import { createRegistry } from '../../src/observability/metrics.js';
import { createServer, type BrokerServer } from '../../src/server/server.js';
import type { DispatcherReporter } from '../../src/server/dispatcher-reporter.js';
import { FakeTunnelClient } from './fake-tunnel-client.js';
import { waitFor } from './wait.js';

export interface InProcessServer {
  server: BrokerServer;
  url: string;
  stop(): Promise<void>;
}

/** Our broker server built in-process on a free port, for unit-level tests. */
export async function startInProcessServer(env: Record<string, string> = {}, dispatcher?: DispatcherReporter, logger: Logger = silentLogger()): Promise<InProcessServer> {
  const config = await loadServerConfig({ PORT: '0', BROKER_SERVER_HOST: '127.0.0.1', BROKER_SERVER_DRAIN_GRACE_MS: '2000', ...env });
  const egress = await createEgress();
  const server = createServer(config, { logger, egress, registry: createRegistry('test', false), dispatcher });
  const port = await server.start();
  return { server, url: `http://127.0.0.1:${port}`, stop: () => server.stop('test') };
}

/**
 * `count` fake clients (ids `fake-0`, `fake-1`, ...) tunnelled to `s` for `token`, each pushed to
 * `track` as soon as it exists (so the caller's cleanup closes it even if a later one fails);
 * resolves once the server holds that many ready connections.
 */
export async function connectFakeClients(s: InProcessServer, token: string, count: number, options: ConstructorParameters<typeof FakeTunnelClient>[2], track: FakeTunnelClient[]): Promise<FakeTunnelClient[]> {
  const fakes: FakeTunnelClient[] = [];
  for (let i = 0; i < count; i++) {
    const c = new FakeTunnelClient(s.url, token, { clientId: `fake-${i}`, ...options });
    track.push(c);
    fakes.push(c);
    await c.opened;
  }
  await waitFor('connections ready', () => s.server.pool.members(token).filter((c) => c.state === 'ready').length === count);
  return fakes;
}
