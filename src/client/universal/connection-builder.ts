import { randomUUID } from 'node:crypto';
import { loadClientConfig, type ClientConfig } from '../../config/client.js';
import { ConfigError } from '../../config/errors.js';
import { describeError } from '../../http/errors.js';
import type { Egress } from '../../http/egress.js';
import type { Logger, SecretScrubber } from '../../observability/logger.js';
import { createBrokerConnection } from '../broker-connection.js';
import { metricsForConnection, type BaseClientMetrics } from '../metrics.js';
import type { PlatformAuth } from '../platform-auth.js';
import { AuthRenewal } from './auth-renewal.js';
import type { ClientLifecycle } from '../client-lifecycle.js';
import { logPreflight, runPreflightChecks } from '../preflight.js';
import type { RunnablePlan } from './connection-env.js';
import type { RunningConnection } from './connection-registry.js';
import type { UniversalClientSettings } from './universal-client.js';

export interface ConnectionBuilderDeps {
  settings: UniversalClientSettings;
  logger: Logger;
  egress: Egress;
  scrubber: SecretScrubber;
  metrics: BaseClientMetrics;
  auth: PlatformAuth | undefined;
  /** The server asked for a sync (service config/reload on any tunnel). */
  sync(): void;
  /** A connection's renewals keep failing: build it anew. */
  restart(name: string, reason: string): void;
}

/** Each context read as its own configuration; one that cannot be read is off, its connection and other contexts run. */
async function contextConfigs(plan: RunnablePlan, cwd: string, scrubber: SecretScrubber, log: Logger): Promise<Map<string, ClientConfig | string>> {
  const out = new Map<string, ClientConfig | string>();
  for (const [id, c] of Object.entries(plan.contexts)) {
    if ('disabled' in c) {
      log.warn({ context: id }, c.disabled);
      out.set(id, c.disabled);
      continue;
    }
    try {
      const config = await loadClientConfig(c.env, { cwd, universalType: plan.filterType });
      scrubber.add(...config.secrets);
      out.set(id, config);
    } catch (err) {
      const why = err instanceof ConfigError ? err.problems.join('; ') : describeError(err);
      log.error({ context: id, err: why }, 'context cannot be used: its configuration is unusable');
      out.set(id, `its configuration is unusable: ${why}`);
    }
  }
  return out;
}

/**
 * Turns a connection's plan into running tunnels: the classic configuration reader over its
 * environment (the same checks, presets, rule injection, GitHub App and commit signing as a
 * classic client), one broker connection with the Universal additions, and its auth renewal.
 */
export function connectionBuilder(deps: ConnectionBuilderDeps): (plan: RunnablePlan) => Promise<RunningConnection> {
  const { settings: s, auth } = deps;
  const ub = s.universal;
  return async function build(plan) {
    const config = await loadClientConfig(plan.env, { cwd: s.cwd, universalType: plan.filterType });
    deps.scrubber.add(...config.secrets);
    const log = deps.logger.child({ connection: plan.name });
    for (const note of config.startNotes) log[note.level](note.fields ?? {}, note.message);
    const contexts = await contextConfigs(plan, s.cwd, deps.scrubber, log);
    const lifecycle: ClientLifecycle = { draining: false, closing: false, preflight: [] };
    // As a classic client: never blocks the start; the results go into the later identifies.
    if (config.preflightEnabled) {
      void runPreflightChecks(config, deps.egress).then((results) => {
        lifecycle.preflight = results;
        logPreflight(log, results);
      });
    }
    const connection = createBrokerConnection(config, {
      logger: log,
      egress: deps.egress,
      metrics: metricsForConnection(deps.metrics, plan.name),
      env: config.env,
      scrubber: deps.scrubber,
      lifecycle,
      // Each build is its own client instance: releasing a replaced one's allocation leaves the new one's.
      instanceId: randomUUID(),
      auth,
      identifyExtras: { deploymentId: ub.deploymentId, supportedIntegrationType: plan.filterType, friendlyName: plan.name, clientConfig: { universalBroker: true } },
      reloadConfig: () => deps.sync(),
      contexts,
    });
    await connection.prepare();
    connection.openTunnels();
    const renewal = auth
      ? new AuthRenewal(
          {
            egress: deps.egress,
            auth,
            logger: log,
            apiBaseUrl: ub.apiBaseUrl,
            identifier: plan.identifier,
            clientId: s.clientId,
            wireVersion: s.wireVersion,
            intervalMs: ub.authRenewalMs,
            failuresBeforeRestart: ub.renewalFailuresBeforeRestart,
            onFailed: (reason) => deps.restart(plan.name, reason),
          },
          () => connection.tunnels,
        )
      : undefined;
    renewal?.start();
    return { plan, connection, stopExtras: () => renewal?.stop() };
  };
}
