import { randomUUID } from 'node:crypto';
import { loadClientConfig } from '../../config/client.js';
import type { Egress } from '../../http/egress.js';
import type { Logger, SecretScrubber } from '../../observability/logger.js';
import { createBrokerConnection } from '../broker-connection.js';
import { metricsForConnection, type BaseClientMetrics } from '../metrics.js';
import type { PlatformAuth } from '../platform-auth.js';
import { AuthRenewal } from './auth-renewal.js';
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

/**
 * Turns a connection's plan into running tunnels: the classic configuration reader over its
 * environment (the same checks, presets, rule injection, GitHub App and commit signing as a
 * classic client), one broker connection with the Universal additions, and its auth renewal.
 */
export function connectionBuilder(deps: ConnectionBuilderDeps): (plan: RunnablePlan) => Promise<RunningConnection> {
  const { settings: s, auth } = deps;
  const ub = s.universal;
  return async function build(plan) {
    const config = await loadClientConfig(plan.env, { cwd: s.cwd });
    deps.scrubber.add(...config.secrets);
    const log = deps.logger.child({ connection: plan.name });
    for (const note of config.startNotes) log[note.level](note.fields ?? {}, note.message);
    const connection = createBrokerConnection(config, {
      logger: log,
      egress: deps.egress,
      metrics: metricsForConnection(deps.metrics, plan.name),
      env: config.env,
      scrubber: deps.scrubber,
      lifecycle: { draining: false, closing: false, preflight: [] },
      // Each build is its own client instance: releasing a replaced one's allocation leaves the new one's.
      instanceId: randomUUID(),
      auth,
      identifyExtras: { deploymentId: ub.deploymentId, supportedIntegrationType: plan.filterType, friendlyName: plan.name, clientConfig: { universalBroker: true } },
      reloadConfig: () => deps.sync(),
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
