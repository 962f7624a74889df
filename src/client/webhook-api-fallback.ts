import type { ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Egress } from '../http/egress.js';
import { describeError } from '../http/errors.js';
import { HOP_BY_HOP, sendFailure } from '../http/server-helpers.js';
import type { Logger } from '../observability/logger.js';
import { maskToken } from '../protocol/index.js';
import { FAILURES } from '../protocol/failures.js';
import type { ClientConfig } from '../config/client.js';
import type { ClientMetrics } from './metrics.js';

export interface ApiFallbackDeps {
  config: ClientConfig;
  logger: Logger;
  egress: Egress;
  metrics: ClientMetrics;
}

/**
 * The real client's fallback when no tunnel is open: the webhook goes straight to
 * API_BASE_URL (only when that is set explicitly), marked with the masked token.
 */
export async function forwardWebhookViaApi(
  deps: ApiFallbackDeps,
  res: ServerResponse,
  method: string,
  url: string,
  headers: Record<string, string | string[]>,
  body: Buffer,
): Promise<void> {
  const { config, logger: log, metrics } = deps;
  const target = `${config.apiBaseUrl}${url}`;
  log.warn({ method, url, api: config.apiBaseUrl }, 'Websocket connection closed, forwarding via API.');
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k) && k !== 'host' && k !== 'content-length' && k !== 'expect') out[k] = v;
  out['x-snyk-broker'] = maskToken(config.token);
  try {
    const r = await deps.egress.request(target, { method: method as 'POST', headers: out, body: body.length > 0 ? body : undefined, signal: AbortSignal.timeout(config.webhookTimeoutMs) });
    const back: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(r.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) back[k] = v;
    res.writeHead(r.statusCode, back);
    await pipeline(r.body, res);
    metrics.requests.inc({ direction: 'webhook', status: `${Math.floor(r.statusCode / 100)}xx` });
  } catch (err) {
    log.warn({ method, url, err: describeError(err) }, 'webhook fallback via API failed');
    metrics.requests.inc({ direction: 'webhook', status: '5xx' });
    if (!res.headersSent) sendFailure(res, FAILURES.API_FALLBACK_FAILED, { ok: false, message: 'no tunnel open and the API fallback failed' });
    else res.destroy();
  }
}
