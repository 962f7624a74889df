import { loadServerConfig } from '../config/server.js';
import type { Env } from '../config/env.js';
import { createEgress } from '../http/egress.js';
import { createLogger, SecretScrubber } from '../observability/logger.js';
import { createRegistry } from '../observability/metrics.js';
import type { Program } from '../program.js';
import { createServer, type BrokerServer } from './server.js';

export interface RunningServer extends Program {
  readonly server: BrokerServer;
  readonly port: number;
}

/** `broker server`: config from env (exit 2 on problems), then listen until stopped. */
export async function startServer(env: Env): Promise<RunningServer> {
  const config = await loadServerConfig(env);
  const scrubber = new SecretScrubber();
  scrubber.add(...config.secrets);
  const logger = createLogger({ level: config.logLevel, name: 'broker-server', scrubber });
  const egress = await createEgress({ headersTimeoutMs: 60_000, bodyTimeoutMs: 60_000 });
  // GATEWAY_TLS_OPTION_NAME=rejectUnauthorized, VALUE=false: the handshake validation alone skips certificate checks (as in snyk-broker).
  const gatewayEgress = config.mandatoryAuth && !config.mandatoryAuth.gatewayRejectUnauthorized ? await createEgress({ headersTimeoutMs: 60_000, bodyTimeoutMs: 60_000, rejectUnauthorized: false }) : undefined;
  const registry = createRegistry('broker_server');
  const server = createServer(config, { logger, egress, registry, scrubber, gatewayEgress });
  const port = await server.start();
  return {
    server,
    port,
    logger,
    stop: async (reason) => {
      await server.stop(reason);
      await gatewayEgress?.close().catch(() => undefined);
    },
  };
}
