import { randomUUID } from 'node:crypto';
import type { Logger } from '../observability/logger.js';
import type { Egress } from '../http/egress.js';
import { describeError } from '../http/errors.js';
import { delay } from '../http/backoff.js';
import type { ServerMetrics } from './metrics.js';
import { dispatcherCallUrl, type DispatcherCall, type DispatcherEvent } from './dispatcher-report-calls.js';

/** Answer header of our dispatcher asking a server it only knows from reports to register again. */
export const REGISTER_HINT_HEADER = 'x-broker-dispatcher-register';

export interface DispatcherSenderOptions {
  /** The server's base URL on the dispatcher (…/internal/brokerservers/<id>). */
  base: string;
  dispatcherVersion: string;
  internalSecret?: string;
  timeoutMs: number;
  retryDelays: number[];
  /** True once server-stopping was sent: a registration still retrying then gives up. */
  stopping: () => boolean;
  /** The answer carried REGISTER_HINT_HEADER. */
  onRegisterHint: (event: DispatcherEvent) => void;
}

/** Sends one call with retries; failures are logged and counted, never thrown. */
export function createDispatcherSender(o: DispatcherSenderOptions, deps: { egress: Egress; logger: Logger; metrics: ServerMetrics }): (call: DispatcherCall) => Promise<void> {
  const { egress, logger, metrics } = deps;
  return async function send(call: DispatcherCall): Promise<void> {
    const body = call.body === undefined ? undefined : JSON.stringify(call.body);
    for (let attempt = 0; attempt <= o.retryDelays.length; attempt++) {
      if (attempt > 0) await delay(o.retryDelays[attempt - 1]);
      if (call.event === 'server-starting' && o.stopping()) return;
      try {
        const headers: Record<string, string> = {
          accept: 'application/json, text/plain, */*',
          'content-type': 'application/vnd.api+json',
          'snyk-request-id': randomUUID(),
          'user-agent': 'ha-broker-server',
        };
        if (o.internalSecret) headers['x-broker-internal-secret'] = o.internalSecret;
        const res = await egress.request(dispatcherCallUrl(o.base, o.dispatcherVersion, call), { method: call.method, headers, body, signal: AbortSignal.timeout(o.timeoutMs) });
        await res.body.dump().catch(() => undefined);
        if (res.headers[REGISTER_HINT_HEADER] === 'true') o.onRegisterHint(call.event);
        if (res.statusCode >= 200 && res.statusCode < 300) {
          metrics.dispatcherCalls.inc({ event: call.event, outcome: 'ok' });
          return;
        }
        logger.warn({ event: call.event, status: res.statusCode, attempt }, 'dispatcher answered with an error status');
      } catch (err) {
        logger.warn({ event: call.event, attempt, error: describeError(err) }, 'dispatcher call failed');
      }
    }
    metrics.dispatcherCalls.inc({ event: call.event, outcome: 'failed' });
    logger.error({ event: call.event }, 'dispatcher call given up after retries');
  };
}
