import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyTooLargeError, HOP_BY_HOP, headersOf, readBody, refuseBody, sendFailure } from '../http/server-helpers.js';
import { isUuid, parseAckResponse, type ProtocolError, type AckResponse } from '../protocol/index.js';
import { FAILURES, WEBHOOK_NO_CONNECTION } from '../protocol/failures.js';
import type { RuleSet } from '../filters/index.js';
import type { Tunnel } from './tunnel.js';
import { forwardWebhookViaApi, type ApiFallbackDeps } from './webhook-api-fallback.js';

export interface WebhookRelayDeps extends ApiFallbackDeps {
  tunnels: readonly Tunnel[];
  publicRules: () => RuleSet;
  isDraining: () => boolean;
  /** The drain is closing the tunnels: webhooks are refused from now on (they could not finish). */
  isClosing?: () => boolean;
}

type HeaderMap = Record<string, string | string[]>;

const REQUEST_ID_HEADERS = ['x-akamai-request-id', 'x-request-id', 'snyk-request-id', 'x-github-delivery', 'x-gitlab-event-uuid'];

/** Chooses the tunnel for a webhook: primary when open, else any open one. */
export function pickTunnel(tunnels: readonly Tunnel[]): Tunnel | undefined {
  return tunnels.find((t) => t.role === 'primary' && t.isOpen) ?? tunnels.find((t) => t.isOpen);
}

/** The caller's request id when it sent a UUID one, else a new one. */
function webhookRequestId(headers: HeaderMap): string {
  for (const h of REQUEST_ID_HEADERS) {
    const v = headers[h];
    if (typeof v === 'string' && isUuid(v)) return v;
  }
  return randomUUID();
}

/** The `request` event a webhook travels in. */
function relayPayload(url: string, method: string, headers: HeaderMap, body: Buffer, requestId: string) {
  const relayHeaders = { ...headers, 'snyk-request-id': requestId };
  // The real server computes Content-Length of a form-encoded body with TextEncoder, which
  // counts a binary body's comma-joined digits (the origin then waits for bytes that never
  // come); form bodies are text (ASCII by spec), so they travel as a UTF-8 string.
  const contentType = String(headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  const wireBody = contentType === 'application/x-www-form-urlencoded' ? body.toString('utf8') : body;
  return { url, method, headers: relayHeaders, ...(body.length > 0 ? { body: wireBody } : {}), streamingID: '', requestId };
}

/** The server's answer to the webhook, as the caller gets it (our own content-length, no hop-by-hop headers). */
function writeAckAnswer(res: ServerResponse, ack: AckResponse): void {
  const out: HeaderMap = {};
  for (const [k, v] of Object.entries(ack.headers ?? {})) {
    const name = k.toLowerCase();
    if (HOP_BY_HOP.has(name) || name === 'content-length') continue;
    if (typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'))) out[name] = v;
    else if (typeof v === 'number') out[name] = String(v);
  }
  const bytes = ack.body === undefined ? Buffer.alloc(0) : Buffer.from(ack.body);
  out['content-length'] = String(bytes.length);
  res.writeHead(ack.status >= 100 && ack.status <= 599 ? ack.status : 502, out);
  res.end(bytes);
}

/**
 * The webhook relay of the local server: requests allowed by the `public` rules go to the
 * broker server over a tunnel (or to API_BASE_URL when none is open); counts those in flight.
 */
export class WebhookRelay {
  inflight = 0;

  constructor(private readonly deps: WebhookRelayDeps) {}

  async relay(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const deps = this.deps;
    // While draining the Service may still route webhooks here (endpoint removal lags SIGTERM):
    // relay them as long as a tunnel can carry them, refuse only once the tunnels are closing.
    if (deps.isDraining() && (deps.isClosing?.() || !pickTunnel(deps.tunnels)?.channel)) {
      sendFailure(res, FAILURES.CLIENT_DRAINING, { ok: false, message: 'broker client is shutting down' }, { 'retry-after': '1' });
      return;
    }
    this.inflight++;
    try {
      let body: Buffer;
      try {
        body = await readBody(req, deps.config.webhookBodyLimit);
      } catch (err) {
        if (err instanceof BodyTooLargeError) {
          refuseBody(req, res, FAILURES.BODY_TOO_LARGE, { ok: false, message: err.message });
          return;
        }
        throw err;
      }
      const method = (req.method ?? 'GET').toUpperCase();
      const headers = headersOf(req);
      if (!this.allowed(res, method, url, headers, body)) return;
      const tunnel = pickTunnel(deps.tunnels);
      if (!tunnel?.channel) {
        if (deps.config.apiBaseUrl) await forwardWebhookViaApi(deps, res, method, url, headers, body);
        else this.refuseNoTunnel(res, method, url);
        return;
      }
      const requestId = webhookRequestId(headers);
      const payload = relayPayload(url, method, headers, body, requestId);
      let ackArgs: unknown[];
      try {
        ackArgs = await tunnel.channel.call('request', [payload], deps.config.webhookTimeoutMs);
      } catch (err) {
        this.relayFailed(res, requestId, url, err);
        return;
      }
      const ack = this.parseAck(res, requestId, url, ackArgs[0]);
      if (!ack) return;
      writeAckAnswer(res, ack);
      deps.metrics.requests.inc({ direction: 'webhook', status: `${Math.floor(ack.status / 100)}xx` });
      deps.metrics.bytes.inc({ direction: 'webhook' }, body.length);
      deps.logger.info({ requestId, method, url, status: ack.status, role: tunnel.role }, 'relayed a webhook');
    } finally {
      this.inflight--;
    }
  }

  /** The `public` rules allow the webhook; else it is answered as blocked. */
  private allowed(res: ServerResponse, method: string, url: string, headers: HeaderMap, body: Buffer): boolean {
    const match = this.deps.publicRules().match({ method, url, headers, body });
    if (match.allowed) return true;
    this.deps.logger.warn({ method, url, reason: match.reason }, 'blocked a local request (no public accept rule matches)');
    this.deps.metrics.requests.inc({ direction: 'webhook', status: '4xx' });
    sendFailure(res, FAILURES.FILTER_BLOCKED, { code: FAILURES.FILTER_BLOCKED.code, message: 'blocked', reason: match.reason, url });
    return false;
  }

  private refuseNoTunnel(res: ServerResponse, method: string, url: string): void {
    this.deps.logger.warn({ method, url }, 'no open tunnel for a webhook');
    this.deps.metrics.requests.inc({ direction: 'webhook', status: '5xx' });
    sendFailure(res, WEBHOOK_NO_CONNECTION, { ok: false, message: 'no tunnel to the broker server is open' }, { 'retry-after': '1' });
  }

  private relayFailed(res: ServerResponse, requestId: string, url: string, err: unknown): void {
    const code = (err as ProtocolError).code;
    this.deps.logger.warn({ requestId, url, code, err: (err as Error).message }, 'webhook relay failed');
    this.deps.metrics.requests.inc({ direction: 'webhook', status: '5xx' });
    if (code === 'ACK_TIMEOUT') sendFailure(res, FAILURES.WEBHOOK_TIMEOUT, { ok: false, message: (err as Error).message });
    else sendFailure(res, FAILURES.TUNNEL_CLOSED, { ok: false, message: (err as Error).message });
  }

  /** The server's answer, or undefined once a bad one was answered as such. */
  private parseAck(res: ServerResponse, requestId: string, url: string, raw: unknown): AckResponse | undefined {
    try {
      return parseAckResponse(raw);
    } catch (err) {
      this.deps.logger.warn({ requestId, url, err: (err as Error).message }, 'bad webhook answer from the broker server');
      sendFailure(res, FAILURES.BAD_ANSWER, { ok: false, message: (err as Error).message });
      return undefined;
    }
  }
}
