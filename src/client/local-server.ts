import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Egress } from '../http/egress.js';
import { describeError } from '../http/errors.js';
import { BodyTooLargeError, HOP_BY_HOP, headersOf, readBody, refuseBody, sendFailure, sendJson } from '../http/server-helpers.js';
import type { Logger } from '../observability/logger.js';
import { isUuid, maskToken, parseAckResponse, ProtocolError } from '../protocol/index.js';
import { FAILURES, WEBHOOK_NO_CONNECTION } from '../protocol/failures.js';
import { pipeline } from 'node:stream/promises';
import type { RuleSet } from '../filters/index.js';
import type { ClientConfig } from '../config/client.js';
import type { ClientMetrics } from './metrics.js';
import type { PreflightCheck } from './preflight.js';
import type { Tunnel } from './tunnel.js';
import { runSystemcheck } from './systemcheck.js';

export { maskCredential } from './systemcheck.js';

export interface LocalServerDeps {
  config: ClientConfig;
  logger: Logger;
  egress: Egress;
  metrics: ClientMetrics;
  tunnels: readonly Tunnel[];
  publicRules: () => RuleSet;
  acceptDocument: () => unknown;
  isDraining: () => boolean;
  /** The drain is closing the tunnels: webhooks are refused from now on (they could not finish). */
  isClosing?: () => boolean;
  isReady: () => boolean;
  preflight: () => PreflightCheck[];
  /** Reloads the accept rules from the ACCEPT file (POST /filters). */
  reloadFilters?: () => Promise<void>;
}

const REQUEST_ID_HEADERS = ['x-akamai-request-id', 'x-request-id', 'snyk-request-id', 'x-github-delivery', 'x-gitlab-event-uuid'];

/** Chooses the tunnel for a webhook: primary when open, else any open one. */
export function pickTunnel(tunnels: readonly Tunnel[]): Tunnel | undefined {
  return tunnels.find((t) => t.role === 'primary' && t.isOpen) ?? tunnels.find((t) => t.isOpen);
}

/**
 * The client's local HTTP server: health endpoints for operators and Kubernetes, and the
 * webhook relay (requests allowed by the `public` rules go to the broker server over a tunnel).
 */
export function createLocalHandler(deps: LocalServerDeps) {
  const { config, logger: log, metrics } = deps;
  let webhooksInflight = 0;

  function healthcheck(res: ServerResponse): void {
    const entries = deps.tunnels.map((t) => ({
      ok: t.isOpen,
      websocketConnectionOpen: t.isOpen,
      brokerServerUrl: t.displayUrl || `${config.serverUrl}/?connection_role=${t.role}`,
      version: config.wireVersion,
      transport: config.transport,
    }));
    const anyOpen = entries.some((e) => e.ok);
    sendJson(res, anyOpen ? 200 : 500, entries.length === 1 ? entries[0] : entries);
  }

  async function systemcheck(res: ServerResponse): Promise<void> {
    const validation = config.validation;
    if (!validation) {
      sendJson(res, 200, [{ ok: true, message: 'BROKER_CLIENT_VALIDATION_URL is not set; nothing to validate' }]);
      return;
    }
    const { ok, results } = await runSystemcheck({ validation, egress: deps.egress, logger: log, wireVersion: config.wireVersion, insecureDownstream: config.insecureDownstream });
    sendJson(res, ok ? 200 : 500, results);
  }

  async function webhook(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    // While draining the Service may still route webhooks here (endpoint removal lags SIGTERM):
    // relay them as long as a tunnel can carry them, refuse only once the tunnels are closing.
    if (deps.isDraining() && (deps.isClosing?.() || !pickTunnel(deps.tunnels)?.channel)) {
      sendFailure(res, FAILURES.CLIENT_DRAINING, { ok: false, message: 'broker client is shutting down' }, { 'retry-after': '1' });
      return;
    }
    webhooksInflight++;
    try {
      let body: Buffer;
      try {
        body = await readBody(req, config.webhookBodyLimit);
      } catch (err) {
        if (err instanceof BodyTooLargeError) {
          refuseBody(req, res, FAILURES.BODY_TOO_LARGE, { ok: false, message: err.message });
          return;
        }
        throw err;
      }
      const method = (req.method ?? 'GET').toUpperCase();
      const headers = headersOf(req);
      const match = deps.publicRules().match({ method, url, headers, body });
      if (!match.allowed) {
        log.warn({ method, url, reason: match.reason }, 'blocked a local request (no public accept rule matches)');
        metrics.requests.inc({ direction: 'webhook', status: '4xx' });
        sendFailure(res, FAILURES.FILTER_BLOCKED, { code: FAILURES.FILTER_BLOCKED.code, message: 'blocked', reason: match.reason, url });
        return;
      }
      const tunnel = pickTunnel(deps.tunnels);
      if ((!tunnel || !tunnel.channel) && config.apiBaseUrl) {
        await forwardViaApi(res, method, url, headers, body);
        return;
      }
      if (!tunnel || !tunnel.channel) {
        log.warn({ method, url }, 'no open tunnel for a webhook');
        metrics.requests.inc({ direction: 'webhook', status: '5xx' });
        sendFailure(res, WEBHOOK_NO_CONNECTION, { ok: false, message: 'no tunnel to the broker server is open' }, { 'retry-after': '1' });
        return;
      }
      let requestId: string = randomUUID();
      for (const h of REQUEST_ID_HEADERS) {
        const v = headers[h];
        if (typeof v === 'string' && isUuid(v)) {
          requestId = v;
          break;
        }
      }
      const relayHeaders = { ...headers, 'snyk-request-id': requestId };
      // The real server computes Content-Length of a form-encoded body with TextEncoder, which
      // counts a binary body's comma-joined digits (the origin then waits for bytes that never
      // come); form bodies are text (ASCII by spec), so they travel as a UTF-8 string.
      const contentType = String(headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      const wireBody = contentType === 'application/x-www-form-urlencoded' ? body.toString('utf8') : body;
      const payload = { url, method, headers: relayHeaders, ...(body.length > 0 ? { body: wireBody } : {}), streamingID: '', requestId };
      let ackArgs: unknown[];
      try {
        ackArgs = await tunnel.channel.call('request', [payload], config.webhookTimeoutMs);
      } catch (err) {
        const code = (err as ProtocolError).code;
        log.warn({ requestId, url, code, err: (err as Error).message }, 'webhook relay failed');
        metrics.requests.inc({ direction: 'webhook', status: '5xx' });
        if (code === 'ACK_TIMEOUT') sendFailure(res, FAILURES.WEBHOOK_TIMEOUT, { ok: false, message: (err as Error).message });
        else sendFailure(res, FAILURES.TUNNEL_CLOSED, { ok: false, message: (err as Error).message });
        return;
      }
      let ack;
      try {
        ack = parseAckResponse(ackArgs[0]);
      } catch (err) {
        log.warn({ requestId, url, err: (err as Error).message }, 'bad webhook answer from the broker server');
        sendFailure(res, FAILURES.BAD_ANSWER, { ok: false, message: (err as Error).message });
        return;
      }
      const out: Record<string, string | string[]> = {};
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
      metrics.requests.inc({ direction: 'webhook', status: `${Math.floor(ack.status / 100)}xx` });
      metrics.bytes.inc({ direction: 'webhook' }, body.length);
      log.info({ requestId, method, url, status: ack.status, role: tunnel.role }, 'relayed a webhook');
    } finally {
      webhooksInflight--;
    }
  }

  /**
   * The real client's fallback when no tunnel is open: the webhook goes straight to
   * API_BASE_URL (only when that is set explicitly), marked with the masked token.
   */
  async function forwardViaApi(res: ServerResponse, method: string, url: string, headers: Record<string, string | string[]>, body: Buffer): Promise<void> {
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

  const handler: RequestListener = (req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?')[0];
    const method = req.method ?? 'GET';
    const route = async () => {
      if (method === 'GET') {
        if (path === config.healthcheckPath) return healthcheck(res);
        if (path === config.systemcheckPath) return systemcheck(res);
        if (path === '/livez') return sendJson(res, 200, { ok: true });
        if (path === '/readyz') {
          const ready = deps.isReady();
          return ready ? sendJson(res, 200, { ok: true }) : sendFailure(res, deps.isDraining() ? FAILURES.CLIENT_DRAINING : FAILURES.NOT_READY, { ok: false });
        }
        if (path === '/metrics') {
          const text = await metrics.registry.metrics();
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          return res.end(text);
        }
        if (path === '/health/checks') return sendJson(res, 200, deps.preflight());
        if (path.startsWith('/health/checks/')) {
          const id = decodeURIComponent(path.slice('/health/checks/'.length));
          const check = deps.preflight().find((c) => c.id === id);
          return check ? sendJson(res, 200, check) : sendFailure(res, FAILURES.UNKNOWN_CHECK, { ok: false, message: `no check ${id}` });
        }
        if (path === '/filters') return sendJson(res, 200, deps.acceptDocument());
      }
      if (method === 'POST' && path === '/filters' && deps.reloadFilters) {
        try {
          await deps.reloadFilters();
          return sendJson(res, 200, { ok: true, msg: 'Filters reloaded.' });
        } catch (err) {
          return sendFailure(res, FAILURES.FILTERS_RELOAD_FAILED, { ok: false, msg: (err as Error).message });
        }
      }
      return webhook(req, res, url);
    };
    route().catch((err) => {
      log.error({ url: path, err: describeError(err) }, 'local request failed');
      if (!res.headersSent) sendFailure(res, FAILURES.INTERNAL_ERROR, { ok: false });
      else res.destroy();
    });
  };

  return {
    handler,
    get webhooksInflight(): number {
      return webhooksInflight;
    },
  };
}
