import { loadDispatcherConfig } from '../config/dispatcher.js';
import { createLogger, SecretScrubber } from '../observability/logger.js';
import type { Program } from '../program.js';
import { createDispatcher } from './dispatcher.js';

/** `broker dispatcher`: validates the environment (ConfigError → exit 2), then serves until stopped. */
export async function startDispatcher(env: NodeJS.ProcessEnv): Promise<Program> {
  const config = await loadDispatcherConfig(env);
  const scrubber = new SecretScrubber();
  scrubber.add(...config.secrets);
  const logger = createLogger({ level: config.logLevel, name: 'ha-broker-dispatcher', scrubber });
  const dispatcher = createDispatcher(config, { logger });
  await dispatcher.start();
  return {
    logger,
    async stop(reason) {
      await dispatcher.stop(reason);
      logger.flush?.();
    },
  };
}
