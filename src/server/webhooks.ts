import type { RuleSet } from '../filters/index.js';
import type { Egress } from '../http/egress.js';
import { classifyEgressError } from '../http/errors.js';
import { HOP_BY_HOP } from '../http/server-helpers.js';
import type { Logger } from '../observability/logger.js';
import { maskToken, parseRelayRequest, type AckResponse } from '../protocol/index.js';
import { VERSION } from '../version.js';
import type { ServerMetrics } from './metrics.js';

export interface WebhookForwarderDeps {
  privateRules?: RuleSet;
  egress: Egress;
  logger: Logger;
  metrics: ServerMetrics;
  timeoutMs: number;
  /** The answer travels back in one ack: larger answers are refused (502). */
  responseLimitBytes: number;
}

const DROPPED_HEADERS = new Set([...HOP_BY_HOP, 'host', 'content-length', 'x-broker-token']);

function blocked(reason: string, url: string): AckResponse {
  return { status: 401, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: 'FILTER_BLOCKED', message: 'blocked', reason, url }) };
}

/**
 * A `request` event with an ack id from a client (a webhook): the server's private rules
 * decide where it goes; the destination's answer goes back in the ack.
 */
export function createWebhookForwarder(deps: WebhookForwarderDeps) {
  const { egress, logger, metrics } = deps;

  async function forward(token: string, raw: unknown): Promise<AckResponse> {
    let request;
    try {
      request = parseRelayRequest(raw);
    } catch (err) {
      metrics.webhooks.inc({ outcome: 'invalid' });
      return { status: 400, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ok: false, message: `invalid request event: ${(err as Error).message}` }) };
    }
    const requestId = request.requestId ?? (typeof request.headers['snyk-request-id'] === 'string' ? request.headers['snyk-request-id'] : undefined);
    const ackHeaders = (h: Record<string, string | string[]>) => ({ ...h, ...(requestId ? { 'snyk-request-id': requestId } : {}), 'x-broker-ws-response': 'true' });
    if (!deps.privateRules) {
      metrics.webhooks.inc({ outcome: 'refused' });
      logger.warn({ requestId, url: request.url.split('?')[0] }, 'webhook refused: this server has no ACCEPT rules');
      const answer = blocked('This broker server has no ACCEPT rules configured, so it refuses every webhook', request.url);
      return { ...answer, headers: ackHeaders(answer.headers as Record<string, string>) };
    }
    const result = deps.privateRules.match({ method: request.method, url: request.url, headers: request.headers, body: request.body });
    if (!result.allowed) {
      metrics.webhooks.inc({ outcome: 'blocked' });
      logger.info({ requestId, method: request.method, url: request.url.split('?')[0], reason: result.reason }, 'webhook blocked by the private rules');
      const answer = blocked(result.reason, request.url);
      return { ...answer, headers: ackHeaders(answer.headers as Record<string, string>) };
    }
    if (!result.targetUrl) {
      metrics.webhooks.inc({ outcome: 'blocked' });
      const answer = blocked('The matching private rule has no origin to forward to', request.url);
      return { ...answer, headers: ackHeaders(answer.headers as Record<string, string>) };
    }
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(request.headers)) if (!DROPPED_HEADERS.has(k)) headers[k] = v;
    const ua = request.headers['user-agent'];
    headers['x-broker-token'] = token;
    headers['x-snyk-broker'] = maskToken(token);
    if (requestId) headers['x-request-id'] = (request.headers['x-request-id']) ?? requestId;
    headers['x-broker-origin-ua'] = typeof ua === 'string' ? ua : 'not-provided';
    headers['user-agent'] = `Snyk Broker Client ${VERSION}`;
    if (result.authorization) headers.authorization = result.authorization;
    const body = request.body === undefined ? undefined : Buffer.isBuffer(request.body) ? request.body : Buffer.from(request.body, 'utf8');
    try {
      const res = await egress.request(result.targetUrl, { method: request.method as 'POST', headers, body, signal: AbortSignal.timeout(deps.timeoutMs) });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > deps.responseLimitBytes) {
          res.body.destroy();
          metrics.webhooks.inc({ outcome: 'too-large' });
          return { status: 502, errorType: 'BODY_TOO_LARGE', headers: ackHeaders({ 'content-type': 'application/json' }), body: JSON.stringify({ code: 'BODY_TOO_LARGE', message: `webhook answer exceeds ${deps.responseLimitBytes} bytes` }) };
        }
        chunks.push(chunk as Buffer);
      }
      const answerHeaders: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) answerHeaders[k] = v;
      metrics.webhooks.inc({ outcome: 'forwarded' });
      logger.info({ requestId, method: request.method, url: request.url.split('?')[0], status: res.statusCode }, 'webhook forwarded');
      return { status: res.statusCode, headers: ackHeaders(answerHeaders), body: Buffer.concat(chunks).toString('utf8') };
    } catch (err) {
      const e = classifyEgressError(err);
      metrics.webhooks.inc({ outcome: 'error' });
      logger.warn({ requestId, url: request.url.split('?')[0], code: e.code, error: e.message }, 'webhook destination failed');
      return { status: e.status, errorType: e.code, headers: ackHeaders({ 'content-type': 'application/json' }), body: JSON.stringify({ code: e.code, message: e.message }) };
    }
  }

  return { forward };
}

export type WebhookForwarder = ReturnType<typeof createWebhookForwarder>;
