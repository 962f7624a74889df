import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Egress } from '../http/egress.js';
import { delay, waitAtMost } from '../http/backoff.js';
import { classifyEgressError, describeError, errorCodes, EgressError, explainCertificateError, neverConnected } from '../http/errors.js';
import { FAILURE_HEADER, HOP_BY_HOP } from '../http/server-helpers.js';
import { FAILURES } from '../protocol/failures.js';
import type { Logger } from '../observability/logger.js';
import { isUuid, parseRelayRequest, TUNNEL_ANSWERS_CAPABILITY, type RelayRequest, type Reply, type ResponseHead } from '../protocol/index.js';
import { VariableResolver, type RuleSet } from '../filters/index.js';
import type { ResponseWriter } from './response-writer.js';
import { discardBody } from './response-writer.js';
import type { Tunnel } from './tunnel.js';
import type { ClientMetrics } from './metrics.js';
import { isOn } from '../config/env.js';
import { parseJson } from '../json.js';
import { pipeline } from 'node:stream';
import { toInsecure } from './insecure-downstream.js';
import type { BodyUrlRewriter } from './res-body-url-sub.js';
import { BodyLogTap, bodyForLog } from './body-log.js';

export interface RelayOptions {
  rules: () => RuleSet;
  egress: Egress;
  writer: ResponseWriter;
  logger: Logger;
  metrics: ClientMetrics;
  wireVersion: string;
  maxAckResponseBytes: number;
  removeXForwardedHeaders: boolean;
  /** Values for `BROKER_VAR_SUB` / `x-broker-var-sub` substitution (the client's environment). */
  vars?: Record<string, string | undefined>;
  /** Reloads the accept rules (service command filters/reload). */
  reloadFilters?: () => Promise<void>;
  /** Origin connect refusals are retried this many times (nothing was sent yet). */
  connectRetries?: number;
  connectRetryDelayMs?: number;
  /** Small answers go back over the tunnel when our server offers it (BROKER_CLIENT_TUNNEL_ANSWERS); default on. */
  tunnelAnswers?: boolean;
  /** INSECURE_DOWNSTREAM: origins are called over plain http. */
  insecureDownstream?: boolean;
  /** RES_BODY_URL_SUB: rewrites package URLs in JSON answers. */
  bodyUrlRewriter?: BodyUrlRewriter;
  /** LOG_ENABLE_BODY: request and response bodies go into debug lines. */
  logBodies?: boolean;
}

/** Origin answers up to this size (by content-length) are read whole: posted in one write. */
const SMALL_ANSWER_BYTES = 64 * 1024;
/**
 * An answer of unknown size (chunked) that ends within this time and within the size above is
 * read whole too; anything slower streams from what arrived, so a slow stream waits at most this.
 */
const UNKNOWN_SIZE_HOLD_MS = 20;

/** Headers the platform sends that must not reach internal systems. */
const STRIPPED = new Set([
  'host',
  'content-length',
  'expect',
  'snyk-flow-name',
  'snyk-product-line',
  'snyk-project-type',
  'snyk-integration-type',
  'x-snyk-broker-context-id',
  'x-broker-ws-response',
]);

/** The contract's errorType for an origin status (protocol §3.3). */
export function errorTypeForStatus(status: number): string | undefined {
  if (status === 401) return 'DOWNSTREAM_UNAUTHORIZED';
  if (status === 403) return 'DOWNSTREAM_FORBIDDEN';
  if (status === 429) return 'DOWNSTREAM_RATE_LIMITED';
  if (status >= 500) return 'DOWNSTREAM_SERVER_ERROR';
  if (status >= 400 && status !== 404) return 'DOWNSTREAM_UNEXPECTED';
  return undefined;
}

/**
 * The contract's errorType for a failed origin call (protocol §3.3, as the real client maps
 * errnos): refused/unresolvable → DOWNSTREAM_UNREACHABLE, timeouts → DOWNSTREAM_TIMEOUT, anything
 * else — a reset or a socket closed after connecting — → DOWNSTREAM_ERROR.
 */
export function originError(err: unknown, url?: string): EgressError {
  const tls = url === undefined ? undefined : explainCertificateError(err, url, "the accept rule's origin");
  if (tls) return new EgressError('DOWNSTREAM_ERROR', tls.message, { cause: err });
  const e = classifyEgressError(err);
  if (e.code !== 'DOWNSTREAM_UNREACHABLE' || neverConnected(err)) return e;
  return new EgressError('DOWNSTREAM_ERROR', e.message, { cause: err });
}

/** `/ctx/<uuid>` at the start of the url is routing context, not part of the origin path. */
export function stripContext(url: string): { url: string; contextId?: string } {
  const m = /^\/ctx\/([^/?#]+)(?=[/?#]|$)/.exec(url);
  if (!m || !isUuid(m[1])) return { url };
  const rest = url.slice(m[0].length);
  return { url: rest.startsWith('/') ? rest : `/${rest}`, contextId: m[1] };
}

const VAR_REF = /\$\{([^}]*)\}/g;

function substituteVars(value: string, vars: VariableResolver): string {
  // Same semantics as the real client (unset → empty, a pool gives its next value), except the broker token never leaves.
  return value.replace(VAR_REF, (_, name: string) => (name === 'BROKER_TOKEN' ? '' : (vars.get(name) ?? '')));
}

const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function getPath(obj: unknown, path: string): unknown {
  if (path.split('.').some((k) => UNSAFE_KEYS.has(k))) return undefined;
  return path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj);
}

function setPath(obj: unknown, path: string, value: unknown): void {
  const keys = path.split('.');
  const last = keys.pop()!;
  if (UNSAFE_KEYS.has(last)) return;
  const target = keys.length === 0 ? obj : getPath(obj, keys.join('.'));
  if (target && typeof target === 'object') (target as Record<string, unknown>)[last] = value;
}

/**
 * `${VAR}` substitution the platform asks for (protocol §3.3): JSON bodies listing paths in
 * `BROKER_VAR_SUB`, headers named in `x-broker-var-sub` — e.g. a webhook URL built from
 * `${BROKER_CLIENT_URL}` when Snyk creates an SCM webhook.
 */
export function applyVarSubstitution(req: RelayRequest, vars: Record<string, string | undefined>, resolver: VariableResolver = new VariableResolver(vars)): RelayRequest {
  let out = req;
  if (req.body !== undefined && req.body.length > 0 && !isOn(vars.DISABLE_BODY_VARS_SUBSTITUTION)) {
    let parsed: unknown;
    try {
      parsed = parseJson(typeof req.body === 'string' ? req.body : req.body.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    const paths = (parsed as { BROKER_VAR_SUB?: unknown } | undefined)?.BROKER_VAR_SUB;
    if (parsed && typeof parsed === 'object' && Array.isArray(paths)) {
      for (const path of paths) {
        if (typeof path !== 'string') continue;
        const value = getPath(parsed, path);
        if (typeof value === 'string') setPath(parsed, path, substituteVars(value, resolver));
      }
      delete (parsed as { BROKER_VAR_SUB?: unknown }).BROKER_VAR_SUB;
      out = { ...out, body: Buffer.from(JSON.stringify(parsed)) };
    }
  }
  const names = req.headers['x-broker-var-sub'];
  if (typeof names === 'string' && !isOn(vars.DISABLE_HEADER_VARS_SUBSTITUTION)) {
    const headers = { ...out.headers };
    for (const raw of names.split(',')) {
      const name = raw.trim().toLowerCase();
      const value = headers[name];
      if (typeof value === 'string') headers[name] = substituteVars(value, resolver);
    }
    out = { ...out, headers };
  }
  return out;
}

export function originHeaders(req: RelayRequest, requestId: string, authorization: string | undefined, wireVersion: string, removeXForwarded: boolean): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    const name = k.toLowerCase();
    if (HOP_BY_HOP.has(name) || STRIPPED.has(name) || name.startsWith('snyk-acting-')) continue;
    if (removeXForwarded && name.startsWith('x-forwarded-')) continue;
    out[name] = v;
  }
  const ua = req.headers['user-agent'];
  if (ua !== undefined) out['x-broker-origin-ua'] = ua;
  out['user-agent'] = `Snyk Broker Client ${wireVersion}`;
  out['x-request-id'] ??= requestId;
  if (authorization) out.authorization = authorization;
  return out;
}

function requestBodyFields(body: Buffer | string | undefined): Record<string, unknown> {
  const { body: text, ...rest } = bodyForLog(body);
  return { requestBody: text, ...rest };
}

function responseBodyFields(body: Buffer): Record<string, unknown> {
  const { body: text, ...rest } = bodyForLog(body);
  return { responseBody: text, ...rest };
}

interface Answer {
  head: ResponseHead;
  body?: Readable | Buffer | string;
}

function brokerError(status: number, code: string, message: string, extra: Record<string, unknown> = {}): Answer {
  return {
    head: { status, errorType: code, headers: { 'content-type': 'application/json' } },
    body: JSON.stringify({ code, message, ...extra }),
  };
}

function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

/**
 * Relays `request` events from the broker server to internal systems: filter (private rules),
 * build the target, inject credentials, call the origin through the one egress stack, and
 * answer by streamed POST /response-data, by ack, or by legacy `chunk` events.
 */
export function createRelay(opts: RelayOptions) {
  const log = opts.logger;
  const inflight = new Set<Promise<void>>();
  const connectRetries = opts.connectRetries ?? 3;
  const connectRetryDelayMs = opts.connectRetryDelayMs ?? 500;
  const vars = opts.vars ?? {};
  const varsResolver = new VariableResolver(vars);

  async function callOrigin(target: string, method: string, headers: Record<string, string | string[]>, body: Buffer | string | undefined) {
    const url = new URL(target);
    for (let attempt = 0; ; attempt++) {
      try {
        // A small answer (by content-length) comes whole: no response stream per request.
        return await opts.egress.requestAnswer({
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: method,
          headers,
          body: body === undefined || body.length === 0 ? undefined : body,
          bufferUpTo: SMALL_ANSWER_BYTES,
          holdUnknownMs: UNKNOWN_SIZE_HOLD_MS,
        });
      } catch (err) {
        // Only a refused connection is surely unsent, so only then is a retry safe.
        if (attempt < connectRetries && errorCodes(err).includes('ECONNREFUSED')) {
          await delay(connectRetryDelayMs);
          continue;
        }
        throw originError(err, url.origin);
      }
    }
  }

  async function answerFor(req: RelayRequest, requestId: string, forAck: boolean): Promise<Answer> {
    const rules = opts.rules();
    const result = rules.match({ method: req.method, url: req.url, headers: req.headers, body: req.body });
    if (!result.allowed) {
      log.warn({ requestId, method: req.method, url: req.url, reason: result.reason }, 'blocked a request from the broker server (no private accept rule matches)');
      return brokerError(401, 'FILTER_BLOCKED', 'blocked', { reason: '[Websocket Flow][Blocked Request] Does not match any accept rule', url: req.url });
    }
    if (result.unsetOriginVariables) {
      const names = result.unsetOriginVariables.join(', ');
      log.warn({ requestId, url: req.url, unsetVariables: result.unsetOriginVariables }, 'matching private rule has an empty origin: its variables are unset');
      const unset = FAILURES.ORIGIN_VARIABLE_UNSET;
      const answer = brokerError(unset.status, unset.code, `the matching accept rule's origin needs ${names}, which ${result.unsetOriginVariables.length === 1 ? 'is' : 'are'} not set on the broker client`);
      answer.head.headers![FAILURE_HEADER] = `${unset.reason}: ${names}`;
      return answer;
    }
    if (!result.targetUrl) {
      log.warn({ requestId, url: req.url }, 'matching private rule has no origin');
      return brokerError(502, 'DOWNSTREAM_ERROR', 'matching accept rule has no origin');
    }
    // Pools rotate as in the rule's origin: the view the match used, or the relay's own rotation.
    req = applyVarSubstitution(req, vars, result.variables ?? varsResolver);
    const headers = originHeaders(req, requestId, result.authorization, opts.wireVersion, opts.removeXForwardedHeaders);
    if (opts.logBodies) log.debug({ requestId, method: req.method, url: req.url, ...requestBodyFields(req.body) }, 'relaying request body');
    let res;
    try {
      res = await callOrigin(opts.insecureDownstream ? toInsecure(result.targetUrl) : result.targetUrl, req.method, headers, req.body);
    } catch (err) {
      const e = classifyEgressError(err);
      log.warn({ requestId, method: req.method, url: req.url, code: e.code, err: e.message }, 'origin call failed');
      return brokerError(e.status, e.code, e.message);
    }
    let resHeaders: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) resHeaders[k] = v;
    let body: Buffer | Readable = res.body;
    if (opts.logBodies) {
      const fields = { requestId, method: req.method, url: req.url, status: res.statusCode };
      if (Buffer.isBuffer(body)) log.debug({ ...fields, ...responseBodyFields(body) }, 'origin answer body');
      else body = pipeline(body, new BodyLogTap(log, fields), () => undefined);
    }
    if (opts.bodyUrlRewriter?.applies(resHeaders)) ({ headers: resHeaders, body } = opts.bodyUrlRewriter.rewrite(resHeaders, body));
    const errorType = errorTypeForStatus(res.statusCode);
    const head: ResponseHead = errorType ? { status: res.statusCode, headers: resHeaders, errorType } : { status: res.statusCode, headers: resHeaders };
    log.debug({ requestId, method: req.method, url: req.url, status: res.statusCode }, 'origin answered');
    if (!forAck) return { head, body };
    // One ack is one message: the body is buffered, with a cap.
    if (Buffer.isBuffer(body)) {
      if (body.length <= opts.maxAckResponseBytes) return { head, body };
      log.warn({ requestId, url: req.url, limit: opts.maxAckResponseBytes }, 'origin answer too large for an ack');
      return brokerError(502, 'BODY_TOO_LARGE', `response exceeds ${opts.maxAckResponseBytes} bytes`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of body) {
        size += (chunk as Buffer).length;
        if (size > opts.maxAckResponseBytes) {
          discardBody(body);
          log.warn({ requestId, url: req.url, limit: opts.maxAckResponseBytes }, 'origin answer too large for an ack');
          return brokerError(502, 'BODY_TOO_LARGE', `response exceeds ${opts.maxAckResponseBytes} bytes`);
        }
        chunks.push(chunk as Buffer);
      }
    } catch (err) {
      const e = originError(err);
      log.warn({ requestId, url: req.url, code: e.code, err: e.message }, 'origin answer broke off');
      return brokerError(e.status, e.code, e.message);
    }
    return { head, body: Buffer.concat(chunks) };
  }

  async function replyByAck(reply: Reply, answer: Answer, requestId: string): Promise<number> {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(answer.head.headers ?? {})) {
      if (k === 'content-length' || k === 'transfer-encoding' || HOP_BY_HOP.has(k)) continue;
      headers[k] = v;
    }
    headers['snyk-request-id'] = requestId;
    headers['x-broker-ws-response'] = 'true';
    const body = answer.body === undefined ? '' : Buffer.isBuffer(answer.body) ? answer.body.toString('utf8') : String(answer.body);
    reply({ status: answer.head.status, headers, body, ...(answer.head.errorType ? { errorType: answer.head.errorType } : {}) });
    return Buffer.byteLength(body);
  }

  async function replyByChunks(tunnel: Tunnel, streamingID: string, answer: Answer, requestId: string): Promise<number> {
    let bytes = 0;
    const head = { status: answer.head.status, headers: { ...(answer.head.headers ?? {}), 'snyk-request-id': requestId } };
    await tunnel.emitAndFlush('chunk', streamingID, '', false, head);
    const body = answer.body;
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      bytes = Buffer.byteLength(body);
      await tunnel.emitAndFlush('chunk', streamingID, Buffer.from(body), true);
      return bytes;
    }
    if (body) {
      for await (const chunk of body) {
        bytes += (chunk as Buffer).length;
        await tunnel.emitAndFlush('chunk', streamingID, chunk as Buffer, false);
      }
    }
    await tunnel.emitAndFlush('chunk', streamingID, '', true);
    return bytes;
  }

  async function handleRequest(tunnel: Tunnel, raw: unknown, reply: Reply | undefined): Promise<void> {
    const started = Date.now();
    let req: RelayRequest;
    try {
      req = parseRelayRequest(raw);
    } catch (err) {
      log.warn({ role: tunnel.role, err: (err as Error).message }, 'bad request event from the broker server');
      opts.metrics.requests.inc({ direction: 'inbound', status: '4xx' });
      const answer = brokerError(400, 'BAD_REQUEST', (err as Error).message);
      if (reply) await replyByAck(reply, answer, randomUUID());
      else {
        const streamingID = (raw as { streamingID?: unknown } | null)?.streamingID;
        if (typeof streamingID === 'string' && streamingID && tunnel.placement) {
          await opts.writer.send({ serverUrl: tunnel.placement.serverUrl, serverId: tunnel.placement.serverId, role: tunnel.role, streamingID, requestId: randomUUID(), requestHeaders: {} }, answer.head, answer.body);
        }
      }
      return;
    }
    const headerId = req.headers['snyk-request-id'];
    const requestId = typeof headerId === 'string' && isUuid(headerId) ? headerId : req.requestId && isUuid(req.requestId) ? req.requestId : randomUUID();
    const ctx = stripContext(req.url);
    req = { ...req, url: ctx.url };
    tunnel.requestsHandled++;
    opts.metrics.tunnelRequests.inc({ role: tunnel.role });
    const viaAck = reply !== undefined;
    const viaPost = !viaAck && req.streamingID !== '' && tunnel.capabilities.includes('receive-post-streams');
    const viaChunks = !viaAck && !viaPost && req.streamingID !== '';
    if (!viaAck && !viaPost && !viaChunks) {
      log.warn({ requestId, url: req.url }, 'request event has neither an ack id nor a streamingID; nothing to answer');
      return;
    }
    // Legacy chunk answers travel over this tunnel: a drain must keep it open for them.
    if (viaChunks) tunnel.ackInflight++;
    try {
      await deliver(tunnel, req, requestId, reply, viaAck, viaPost, started);
    } finally {
      if (viaChunks) tunnel.ackInflight--;
    }
  }

  async function deliver(tunnel: Tunnel, req: RelayRequest, requestId: string, reply: Reply | undefined, viaAck: boolean, viaPost: boolean, started: number): Promise<void> {
    // The answer goes to the server that sent the request, even if the tunnel moves meanwhile.
    const placement = tunnel.placement;
    // The connection the request came on: an answer sent over the tunnel must use that one.
    const channel = opts.tunnelAnswers !== false && tunnel.capabilities.includes(TUNNEL_ANSWERS_CAPABILITY) ? tunnel.channel : undefined;
    let answer: Answer;
    try {
      answer = await answerFor(req, requestId, viaAck);
    } catch (err) {
      // Never leave the platform waiting: the real server has no deadline of its own.
      log.error({ requestId, url: req.url, err: describeError(err) }, 'relay failed unexpectedly');
      answer = brokerError(500, 'INTERNAL_ERROR', 'broker client failed to handle the request');
    }
    let bytes = 0;
    let via = viaAck ? 'ack' : viaPost ? 'response-data' : 'chunk';
    try {
      if (viaAck) bytes = await replyByAck(reply!, answer, requestId);
      else if (viaPost) {
        if (!placement) throw new Error('tunnel has no placement');
        ({ bytes, via } = await opts.writer.send(
          {
            serverUrl: placement.serverUrl,
            serverId: placement.serverId,
            role: tunnel.role,
            streamingID: req.streamingID,
            requestId,
            requestHeaders: req.headers,
            overTunnel: channel && ((frame) => tunnel.sendAnswer(frame, channel)),
          },
          answer.head,
          answer.body,
        ));
      } else bytes = await replyByChunks(tunnel, req.streamingID, answer, requestId);
    } catch (err) {
      discardBody(answer.body);
      log.warn({ requestId, url: req.url, err: describeError(err) }, 'failed to deliver the answer to the broker server');
      opts.metrics.requests.inc({ direction: 'inbound', status: 'undelivered' });
      return;
    }
    opts.metrics.requests.inc({ direction: 'inbound', status: statusClass(answer.head.status) });
    opts.metrics.bytes.inc({ direction: 'inbound' }, bytes);
    opts.metrics.answers.inc({ via });
    log.info({ requestId, method: req.method, url: req.url, status: answer.head.status, bytes, ms: Date.now() - started, role: tunnel.role, via }, 'relayed a request');
  }

  async function handleService(tunnel: Tunnel, raw: unknown, reply: Reply | undefined): Promise<void> {
    if (!reply) return;
    let req: RelayRequest;
    try {
      req = parseRelayRequest(raw);
    } catch (err) {
      reply({ status: 400, headers: {}, body: JSON.stringify({ ok: false, msg: (err as Error).message }) });
      return;
    }
    const requestId = typeof req.headers['snyk-request-id'] === 'string' ? (req.headers['snyk-request-id']) : randomUUID();
    const command = req.url.replace(/^\/+/, '').split('?')[0];
    if (command === 'filters/reload' && opts.reloadFilters) {
      try {
        await opts.reloadFilters();
        reply({ status: 200, headers: { requestId }, body: JSON.stringify({ ok: true, msg: 'Filters reloaded.' }) });
      } catch (err) {
        reply({ status: 500, headers: { requestId }, body: JSON.stringify({ ok: false, msg: `Filters reload failed: ${(err as Error).message}` }) });
      }
      return;
    }
    if (command === 'config/reload') {
      reply({ status: 501, headers: { requestId }, body: JSON.stringify({ ok: false, msg: 'Not implemented in classic mode.' }) });
      return;
    }
    log.warn({ role: tunnel.role, command }, 'unknown service command');
    reply({ status: 400, headers: { requestId }, body: JSON.stringify({ ok: false, msg: 'Unknown service command.' }) });
  }

  function track(p: Promise<void>): void {
    const tracked = p
      .catch((err) => log.error({ err: describeError(err) }, 'relay failed unexpectedly'))
      .finally(() => {
        inflight.delete(tracked);
        opts.metrics.relaysInFlight.dec();
      });
    inflight.add(tracked);
    opts.metrics.relaysInFlight.inc();
  }

  return {
    /** Entry point for tunnel events. */
    onEvent(tunnel: Tunnel, name: string, args: unknown[], reply: Reply | undefined): void {
      // Acks need this tunnel open until answered: counted so a drain closes it only after.
      const ackBound = (p: Promise<void>) => {
        if (!reply) return p;
        tunnel.ackInflight++;
        return p.finally(() => tunnel.ackInflight--);
      };
      if (name === 'request') return track(ackBound(handleRequest(tunnel, args[0], reply)));
      if (name === 'service') return track(ackBound(handleService(tunnel, args[0], reply)));
      log.warn({ role: tunnel.role, event: name }, 'unknown event from the broker server; ignored');
      reply?.({ status: 400, headers: {}, body: JSON.stringify({ code: 'UNKNOWN_EVENT', message: `unknown event ${name}` }) });
    },
    get inflight(): number {
      return inflight.size;
    },
    /** Resolves when every in-flight relay has finished (or the deadline passes). */
    async settle(timeoutMs: number): Promise<boolean> {
      const deadline = Date.now() + timeoutMs;
      while (inflight.size > 0) {
        const left = deadline - Date.now();
        if (left <= 0) return false;
        await waitAtMost(Promise.allSettled([...inflight]), left);
      }
      return true;
    },
    statusClass,
  };
}

export type Relay = ReturnType<typeof createRelay>;
