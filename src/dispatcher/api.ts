import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.js';
import { BodyTooLargeError, FAILURE_HEADER, readBody } from '../http/server-helpers.js';
import { FAILURES, type Failure } from '../protocol/failures.js';
import type { Allocator, ConnectionEvent, TokenConnections } from './allocator.js';
import { tokenLabel } from './allocator.js';
import type { DispatcherMetrics } from './metrics.js';
import { StoreError } from './store.js';
import { parseJson } from '../json.js';
import { CLIENT_INSTANCE_HEADER, CLIENT_INSTANCE_QUERY, parseClientInstance } from '../protocol/index.js';

export interface ApiOptions {
  allocator: Allocator;
  metrics: DispatcherMetrics;
  logger: Logger;
  urlPrefix: string;
  internalSecret?: string;
  retryAfterSeconds: number;
  version: string;
  /** Resolves false (or throws) when the store is unreachable. */
  ready: () => Promise<boolean>;
}

const JSONAPI = 'application/vnd.api+json';
/** Answer header on a server report when the dispatcher wants that server to register again. */
export const REGISTER_HINT_HEADER = 'x-broker-dispatcher-register';
const BODY_LIMIT = 64 * 1024;
const HASHED_TOKEN = /^[0-9a-f]{64}$/i;
const CLIENT_ID = /^[A-Za-z0-9._~:-]{1,128}$/;
const SERVER_ID = /^[A-Za-z0-9._~:-]{1,253}$/;

/** A request we refuse: the failure (status, stable code, x-broker-failure reason) and what to tell the caller. */
class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(
    readonly failure: Failure,
    readonly title: string,
    readonly detail: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.status = failure.status;
    this.code = failure.code;
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, type = JSONAPI): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (status === 204) {
    res.writeHead(204, headers);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': `${type}; charset=utf-8`, 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

function sendError(res: ServerResponse, e: ApiError): void {
  send(
    res,
    e.status,
    { jsonapi: { version: '1.0' }, errors: [{ status: String(e.status), code: e.code, title: e.title, detail: e.detail }] },
    { ...e.headers, [FAILURE_HEADER]: e.failure.reason },
  );
}

function segment(raw: string, invalid: Failure, what: string, pattern: RegExp): string {
  let v: string;
  try {
    v = decodeURIComponent(raw);
  } catch {
    throw new ApiError(invalid, `Invalid ${what}`, `${what} is not valid percent-encoding`);
  }
  if (!pattern.test(v)) {
    throw new ApiError(invalid, `Invalid ${what}`, `${what} must match ${pattern.source}`);
  }
  return v;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  let buf: Buffer;
  try {
    buf = await readBody(req, BODY_LIMIT);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw new ApiError(FAILURES.BODY_TOO_LARGE, 'Body too large', `request body exceeds ${BODY_LIMIT} bytes`);
    throw err;
  }
  const text = buf.toString('utf8').trim();
  if (text === '') return undefined;
  try {
    const v = parseJson(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    throw new ApiError(FAILURES.INVALID_BODY, 'Invalid body', 'request body is not JSON');
  }
}

function attributesOf(body: Record<string, unknown> | undefined): Record<string, unknown> {
  const data = body?.data as Record<string, unknown> | undefined;
  const attrs = data && typeof data === 'object' ? (data.attributes as Record<string, unknown> | undefined) : undefined;
  return attrs && typeof attrs === 'object' ? attrs : {};
}

function optionalHttpUrl(value: unknown, name: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new ApiError(FAILURES.INVALID_ATTRIBUTE, `Invalid ${name}`, `${name} must be a string`);
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ApiError(FAILURES.INVALID_ATTRIBUTE, `Invalid ${name}`, `${name} must be an http(s) URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ApiError(FAILURES.INVALID_ATTRIBUTE, `Invalid ${name}`, `${name} must be an http(s) URL`);
  if (u.username || u.password) throw new ApiError(FAILURES.INVALID_ATTRIBUTE, `Invalid ${name}`, `${name} must not carry credentials`);
  return value.replace(/\/+$/, '');
}

/** The path for a log line, hashed tokens shortened to their label. */
function shortPath(url: string | undefined): string {
  return (url ?? '').split('?')[0].replace(/[0-9a-f]{64}/gi, (h) => `${h.slice(0, 8)}…`);
}

function tokenResource(t: TokenConnections) {
  return {
    id: t.hashedToken,
    type: 'token_connections',
    attributes: {
      servers: t.servers.map((s) => ({
        server_id: s.serverId,
        peer_url: s.peerUrl,
        status: s.status,
        connections: s.connections.map((c) => ({ client_id: c.clientId, roles: c.roles, tunnels: c.tunnels, last_seen: new Date(c.lastSeen).toISOString() })),
      })),
      allocations: t.allocations.map((a) => ({ client_id: a.clientId, server_id: a.serverId, connected: a.connected })),
    },
  };
}

function secretMatches(given: string | string[] | undefined, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The dispatcher's HTTP surface: the client-facing allocation API (protocol.md §6.2/6.5),
 * the server-facing registry API (§6.4), the routing lookup, and health/metrics.
 */
export function createApiHandler(o: ApiOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { allocator, metrics, logger: log } = o;
  const prefixParts = o.urlPrefix.split('/').filter(Boolean);
  let lastNoServerLog = -Infinity;

  const methodNotAllowed = (allowed: string[]) =>
    new ApiError(FAILURES.METHOD_NOT_ALLOWED, 'Method not allowed', `use ${allowed.join(' or ')}`, { allow: allowed.join(', ') });

  async function allocation(req: IncomingMessage, res: ServerResponse, rawToken: string, rawClient: string): Promise<void> {
    const hashedToken = segment(rawToken, FAILURES.INVALID_HASHED_TOKEN, 'hashed token', HASHED_TOKEN).toLowerCase();
    const clientId = segment(rawClient, FAILURES.INVALID_CLIENT_ID, 'client id', CLIENT_ID);
    // Our client names its process (rolling updates run two with one id); Snyk's sends nothing.
    const instance = parseClientInstance(req.headers[CLIENT_INSTANCE_HEADER]);
    if (req.method === 'DELETE') {
      req.resume();
      if (await allocator.release(hashedToken, clientId, instance)) metrics.releases.inc();
      send(res, 204, undefined);
      return;
    }
    if (req.method !== 'POST') throw methodNotAllowed(['POST', 'DELETE']);
    const attrs = attributesOf(await readJson(req));
    const r = await allocator.allocate(hashedToken, clientId, instance);
    if (r.kind === 'granted') {
      metrics.allocations.inc({ result: r.created ? 'created' : r.moved ? 'moved' : 'renewed' });
      const attributes: Record<string, string> = { server_id: r.server.id };
      // Only a URL the server's operator published for clients: the internal peer URL may not
      // resolve from a client's network, or resolve to another host that would get the token.
      if (r.server.publicUrl) attributes.server_url = r.server.publicUrl;
      if (r.created) {
        log.debug({ tokenHash: tokenLabel(hashedToken), clientId, location: attrs.deployment_location }, 'new client');
      }
      send(res, r.created ? 201 : 200, { jsonapi: { version: '1.0' }, data: { id: clientId, type: 'broker_connection', attributes } });
      return;
    }
    metrics.refusals.inc({ code: r.code });
    const retry = { 'retry-after': String(r.retryAfterSeconds) };
    if (r.kind === 'unavailable') {
      // Every waiting client hits this every few seconds: say it once per 30 s.
      if (Date.now() - lastNoServerLog >= 30_000) {
        lastNoServerLog = Date.now();
        log.warn('no live broker server: allocations are refused with 503 until a server registers or reports');
      }
      throw new ApiError(FAILURES[r.code], 'No broker server available', 'no live broker server is registered with the dispatcher; retry later', retry);
    }
    if (r.code === 'WARMING_UP') {
      throw new ApiError(FAILURES[r.code], 'Dispatcher warming up', 'the dispatcher just started and is collecting existing connections; retry later', retry);
    }
    throw new ApiError(
      FAILURES[r.code],
      'Too many broker clients for this token',
      `token already has ${r.held} clients allocated (the maximum${r.held > r.max ? ` is ${r.max}` : ''}); retry later`,
      retry,
    );
  }

  async function internal(req: IncomingMessage, res: ServerResponse, parts: string[], query: URLSearchParams): Promise<void> {
    if (o.internalSecret !== undefined && !secretMatches(req.headers['x-broker-internal-secret'], o.internalSecret)) {
      req.resume();
      throw new ApiError(FAILURES.INTERNAL_SECRET_REQUIRED, 'Unauthorized', 'the internal API requires a valid x-broker-internal-secret header');
    }
    // /internal/brokerservers[/{id}[/connections/{hashedToken}]]
    if (parts[1] === 'brokerservers') {
      if (parts.length === 2) {
        if (req.method !== 'GET') throw methodNotAllowed(['GET']);
        const all = query.get('all') === 'true' || query.get('all') === '1';
        const servers = (await allocator.listServers()).filter((s) => all || s.status === 'live' || s.status === 'stopping');
        send(res, 200, {
          jsonapi: { version: '1.0' },
          data: servers.map((s) => ({
            id: s.id,
            type: 'broker_server',
            attributes: {
              status: s.status,
              peer_url: s.peerUrl,
              health_check_link: s.healthCheckLink,
              last_seen: new Date(s.lastSeen).toISOString(),
              registered_at: s.registeredAt !== undefined ? new Date(s.registeredAt).toISOString() : null,
              first_seen: new Date(s.firstSeen).toISOString(),
            },
          })),
        });
        return;
      }
      const serverId = segment(parts[2], FAILURES.INVALID_SERVER_ID, 'server id', SERVER_ID);
      if (parts.length === 3) {
        if (req.method === 'POST') {
          const attrs = attributesOf(await readJson(req));
          const peerUrl = optionalHttpUrl(attrs.peer_url, 'peer_url');
          const publicUrl = optionalHttpUrl(attrs.public_url, 'public_url');
          const healthCheckLink = typeof attrs.health_check_link === 'string' ? attrs.health_check_link : undefined;
          const openTunnels = typeof attrs.open_tunnels === 'number' && Number.isFinite(attrs.open_tunnels) ? attrs.open_tunnels : undefined;
          const unknown = await allocator.registerServer(serverId, { peerUrl, publicUrl, healthCheckLink, openTunnels });
          metrics.serverReports.inc({ event: 'server-starting' });
          // A server we did not know that already holds tunnels (we restarted empty): the hint asks
          // it to announce them now rather than one per ping (~25 s), so allocations converge at once.
          const hint: Record<string, string> = unknown && (openTunnels ?? 0) > 0 ? { [REGISTER_HINT_HEADER]: 'true' } : {};
          send(res, 200, { jsonapi: { version: '1.0' }, data: { id: serverId, type: 'broker_server', attributes: { peer_url: peerUrl, ...(publicUrl ? { public_url: publicUrl } : {}) } } }, hint);
          return;
        }
        if (req.method === 'DELETE') {
          req.resume();
          await allocator.stopServer(serverId);
          metrics.serverReports.inc({ event: 'server-stopping' });
          send(res, 204, undefined);
          return;
        }
        throw methodNotAllowed(['POST', 'DELETE']);
      }
      if (parts.length === 5 && parts[3] === 'connections') {
        const hashedToken = segment(parts[4], FAILURES.INVALID_HASHED_TOKEN, 'hashed token', HASHED_TOKEN).toLowerCase();
        const clientIdRaw = query.get('broker_client_id');
        if (!clientIdRaw) throw new ApiError(FAILURES.MISSING_CLIENT_ID, 'Missing broker_client_id', 'query parameter broker_client_id is required');
        if (!CLIENT_ID.test(clientIdRaw)) throw new ApiError(FAILURES.INVALID_CLIENT_ID, 'Invalid broker_client_id', `broker_client_id must match ${CLIENT_ID.source}`);
        const roleRaw = query.get('connection_role') ?? query.get('role') ?? undefined;
        const role = roleRaw && /^[A-Za-z0-9_-]{1,32}$/.test(roleRaw) ? roleRaw : undefined;
        let event: ConnectionEvent;
        if (req.method === 'DELETE') event = 'client-disconnected';
        else if (req.method === 'POST') {
          const type = query.get('request_type') ?? 'client-connected';
          if (type !== 'client-connected' && type !== 'client-pinged') {
            throw new ApiError(FAILURES.INVALID_REQUEST_TYPE, 'Invalid request_type', 'request_type must be client-connected or client-pinged');
          }
          event = type;
        } else throw methodNotAllowed(['POST', 'DELETE']);
        let peerUrl: string | undefined;
        if (event === 'client-disconnected') req.resume();
        else {
          // Our servers repeat peer_url here, so a dispatcher that restarted with an empty
          // store learns it again from ordinary reports; a body problem never fails a report.
          try {
            peerUrl = optionalHttpUrl(attributesOf(await readJson(req)).peer_url, 'peer_url');
          } catch (err) {
            if (!(err instanceof ApiError)) throw err;
          }
        }
        const instance = parseClientInstance(query.get(CLIENT_INSTANCE_QUERY) ?? undefined);
        const unregistered = await allocator.reportConnection(serverId, hashedToken, clientIdRaw, event, role, peerUrl, instance);
        metrics.serverReports.inc({ event });
        log.debug({ serverId, tokenHash: tokenLabel(hashedToken), clientId: clientIdRaw, event, role }, 'server report');
        // A server we only know from reports is asked to register again (server-starting with
        // peer_url, then its open connections); the real server ignores the hint harmlessly.
        const hint: Record<string, string> = unregistered ? { [REGISTER_HINT_HEADER]: 'true' } : {};
        if (event === 'client-disconnected') send(res, 204, undefined, hint);
        else send(res, 200, { jsonapi: { version: '1.0' }, meta: { ok: true, register: unregistered } }, hint);
        return;
      }
    }
    // /internal/tokens/{hashedToken}/connections
    if (parts[1] === 'tokens' && parts.length === 4 && parts[3] === 'connections') {
      if (req.method !== 'GET') throw methodNotAllowed(['GET']);
      const hashedToken = segment(parts[2], FAILURES.INVALID_HASHED_TOKEN, 'hashed token', HASHED_TOKEN).toLowerCase();
      send(res, 200, { jsonapi: { version: '1.0' }, data: tokenResource(await allocator.tokenConnections(hashedToken)) });
      return;
    }
    // /internal/connections: the same for every token with live tunnels (one poll for a routing cache)
    if (parts[1] === 'connections' && parts.length === 2) {
      if (req.method !== 'GET') throw methodNotAllowed(['GET']);
      send(res, 200, { jsonapi: { version: '1.0' }, data: (await allocator.allTokenConnections()).map(tokenResource) });
      return;
    }
    throw new ApiError(FAILURES.NOT_FOUND, 'Not found', `no such internal endpoint: ${req.method} /${parts.join('/')}`);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://dispatcher');
    const parts = url.pathname.split('/').filter(Boolean);
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (path === '/healthcheck' || path === '/livez') {
        send(res, 200, { ok: true, version: o.version }, {}, 'application/json');
        return;
      }
      if (path === '/readyz') {
        let ok = false;
        try {
          ok = await o.ready();
        } catch {
          ok = false;
        }
        send(res, ok ? 200 : FAILURES.STORE_UNAVAILABLE.status, { ok, store: allocator.store.kind }, ok ? {} : { [FAILURE_HEADER]: FAILURES.STORE_UNAVAILABLE.reason }, 'application/json');
        return;
      }
      if (path === '/metrics') {
        const text = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
        return;
      }
    }
    if (parts[0] === 'internal') return internal(req, res, parts, url.searchParams);
    const rest = parts.slice(prefixParts.length);
    if (prefixParts.every((p, i) => parts[i] === p) && rest.length === 3 && rest[1] === 'connections') {
      return allocation(req, res, rest[0], rest[2]);
    }
    req.resume();
    throw new ApiError(FAILURES.NOT_FOUND, 'Not found', `no route for ${req.method} ${url.pathname}`);
  }

  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof ApiError) {
        if ((err.status >= 500 && err.failure !== FAILURES.NO_LIVE_SERVER) || err.status === 401) log.warn({ method: req.method, path: shortPath(req.url), code: err.code }, err.detail);
        sendError(res, err);
        return;
      }
      if (err instanceof StoreError) {
        log.error({ err: err.message }, 'store unavailable');
        sendError(res, new ApiError(FAILURES.STORE_UNAVAILABLE, 'Dispatcher store unavailable', 'the dispatcher cannot reach its store; retry later', { 'retry-after': String(o.retryAfterSeconds) }));
        return;
      }
      log.error({ err }, 'unexpected error handling request');
      sendError(res, new ApiError(FAILURES.INTERNAL_ERROR, 'Internal error', 'unexpected dispatcher error'));
    });
  };
}
