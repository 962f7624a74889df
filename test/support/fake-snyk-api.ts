// A fake Snyk API for Universal Broker tests (docs: /work/shared/universal-broker.md §2, §4, §9),
// on 127.0.0.1, for the real snyk-broker client and ours alike. What it serves, as the real
// client (snyk-broker 5.22.14 dist/) sends and reads it:
//   POST /oauth2/token                        client_credentials, form body (or HTTP Basic) → JWT (HS256, azp = client id)
//   GET  /hidden/brokers/deployments/:id/connections?version=   JSON:API broker_connection list, keys lower-case
//   POST /hidden/brokers/connections/:identifier/auth/refresh?connection_role=[&server_id=]   201 'OK' (or forwarded: refreshUrl)
//   POST /hidden/brokers/connections/:identifier/auth/validate?version=   what a broker server asks: 201 or 401
//   POST|DELETE /hidden/broker[s]/:sha256/connections/:clientId?version=   HA allocation (function or forwarded)
//   GET  /rest/openapi                        preflight check
//   POST /webhook/*                           webhook fallback, recorded
// Everything else is a 404 JSON. Every request is recorded in `calls` (after its body is read).
// Every /hidden call needs a bearer token this fake issued, unrevoked and unexpired (401 otherwise;
// the UB client always sends one, allocations included, once OAuth is initialised).
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeConnectionContext {
  id: string;
  /** Context overrides; sent with lower-cased keys as Snyk does. */
  values: Record<string, string>;
}

export interface FakeConnection {
  /** The key of CONNECTIONS on the client (its friendlyName). */
  name: string;
  /** The broker type: github, gitlab, github-server-app, ... */
  type: string;
  /** The tunnel token; null = "not in use by any orgs" (no tunnel, not valid for auth). */
  identifier: string | null;
  /** The connection's JSON:API id; a random UUID when absent. */
  id?: string;
  /** configuration.required (keys sent lower-cased; values literal or `${ENV}` references). */
  required?: Record<string, string>;
  /** configuration.default (keys sent lower-cased). */
  default?: Record<string, string>;
  contexts?: FakeConnectionContext[];
}

export interface FakeApiCall {
  method: string;
  /** Path without the query string. */
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: string;
  /** Date.now() when the body had been read. */
  at: number;
}

/** `down`: 503 JSON; `reset`: the connection is destroyed without an answer; `up`: normal. */
export type TokenEndpointState = 'up' | 'down' | 'reset';

export interface FakeSnykApiOptions {
  connections: FakeConnection[];
  deploymentId?: string;
  clientId?: string;
  clientSecret?: string;
  /** expires_in of issued tokens, seconds (default 3600). The real client renews 60 s before expiry. */
  tokenTtlSeconds?: number;
  /** HA allocation: the server id for (sha256 of the identifier, broker client id); undefined → 404. Default '0'. */
  serverId?: (sha256: string, clientId: string) => string | undefined;
  /** HA allocation forwarded to this base URL (our dispatcher) instead of `serverId`; its answer is passed back. */
  dispatcherUrl?: string;
  /** Path prefix used on `dispatcherUrl` (default: the prefix the caller used, /hidden/broker or /hidden/brokers). */
  dispatcherPrefix?: string;
  /**
   * auth/refresh calls passed on to this broker server (as Snyk's gateway is inferred to do),
   * `authorization` included (the server revalidates it), instead of answered here; its answer is passed back.
   */
  refreshUrl?: string;
}

export interface FakeSnykApi {
  /** `http://127.0.0.1:<port>`: API_BASE_URL for the client, GATEWAY_HOSTNAME for a broker server. */
  readonly url: string;
  readonly deploymentId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Every request seen, oldest first. */
  readonly calls: FakeApiCall[];
  setConnections(list: FakeConnection[]): void;
  /** The current list, ids filled in (copies). */
  connections(): FakeConnection[];
  tokenEndpoint(state: TokenEndpointState): void;
  /** Every token issued so far stops validating (new ones work). */
  revokeAllTokens(): void;
  /**
   * The next `times` auth/refresh calls answer `status` (default 500), whatever their credentials;
   * with `identifier`, only calls for that connection count (the others are answered normally).
   */
  failRefresh(times: number, status?: number, identifier?: string): void;
  /** A fresh access token (the raw JWT, no scheme), as /oauth2/token would issue it. */
  issueToken(): string;
  /** The first call (already seen or coming) for which `pred` holds. */
  waitForCall(pred: (c: FakeApiCall) => boolean, timeoutMs?: number): Promise<FakeApiCall>;
  close(): Promise<void>;
}

const JSON_TYPE = 'application/json';
const JSONAPI_TYPE = 'application/vnd.api+json';
const SECRET_PLACEHOLDER = { encrypted: 'not-yet-implemented', expires_at: '1970-01-01T00:00:00.000Z', nonce: 'not-yet-implemented' };

function send(res: ServerResponse, status: number, body: unknown, type = JSON_TYPE, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': type, 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

/** An OAuth/gateway style error: the real client prints `<status>-<error>:<error_description>`. */
function oauthError(res: ServerResponse, status: number, error: string, description: string): void {
  send(res, status, { error, error_description: description }, JSON_TYPE, status === 401 ? { 'www-authenticate': 'Bearer' } : {});
}

function jsonApiError(res: ServerResponse, status: number, detail: string): void {
  send(res, status, { jsonapi: { version: '1.0' }, errors: [{ status: String(status), detail }] }, JSONAPI_TYPE);
}

function lowerKeys(record: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(record ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
}

function copy(c: FakeConnection): FakeConnection {
  return { ...c, required: c.required && { ...c.required }, default: c.default && { ...c.default }, contexts: c.contexts?.map((x) => ({ id: x.id, values: { ...x.values } })) };
}

/** The JSON:API item Snyk returns for a connection (universal-broker.md §2.2). */
function connectionItem(c: FakeConnection, deploymentId: string): unknown {
  return {
    id: c.id,
    type: 'broker_connection',
    attributes: {
      name: c.name,
      deployment_id: deploymentId,
      identifier: c.identifier,
      configuration: { type: c.type, default: lowerKeys(c.default), required: lowerKeys(c.required) },
      secrets: { primary: SECRET_PLACEHOLDER, secondary: SECRET_PLACEHOLDER },
    },
    relationships: (c.contexts ?? []).map((x) => ({ id: x.id, type: 'broker_context', attributes: { context: lowerKeys(x.values) } })),
  };
}

/** The client credentials of a token request: form body, else HTTP Basic (RFC 6749 §2.3.1). */
function clientCredentials(req: IncomingMessage, form: URLSearchParams): { id?: string; secret?: string } {
  const basic = /^basic\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
  if (basic) {
    const decoded = Buffer.from(basic, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon >= 0) return { id: decodeURIComponent(decoded.slice(0, colon)), secret: decodeURIComponent(decoded.slice(colon + 1)) };
  }
  return { id: form.get('client_id') ?? undefined, secret: form.get('client_secret') ?? undefined };
}

class TokenIssuer {
  readonly #key = randomBytes(32);
  /** jti → expiry (ms). Revoked tokens are removed. */
  readonly #live = new Map<string, number>();

  constructor(
    readonly clientId: string,
    readonly ttlSeconds: number,
  ) {}

  issue(): string {
    const nowMs = Date.now();
    const expiresAt = nowMs + this.ttlSeconds * 1000;
    const jti = randomUUID();
    this.#live.set(jti, expiresAt);
    const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const head = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ azp: this.clientId, iat: Math.floor(nowMs / 1000), exp: Math.floor(expiresAt / 1000), jti })}`;
    return `${head}.${this.#sign(head)}`;
  }

  revokeAll(): void {
    this.#live.clear();
  }

  /** Why an Authorization header is not a live bearer token of ours, or undefined when it is. */
  refusal(authorization: string | undefined): string | undefined {
    const jwt = /^bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
    if (!jwt) return 'missing bearer token';
    const parts = jwt.split('.');
    if (parts.length !== 3) return 'not a JWT';
    const want = Buffer.from(this.#sign(`${parts[0]}.${parts[1]}`));
    const got = Buffer.from(parts[2]!);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return 'bad signature';
    let jti: unknown;
    try {
      jti = (JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { jti?: unknown }).jti;
    } catch {
      return 'unreadable claims';
    }
    const expiresAt = typeof jti === 'string' ? this.#live.get(jti) : undefined;
    if (expiresAt === undefined) return 'revoked or unknown token';
    if (expiresAt <= Date.now()) return 'expired token';
    return undefined;
  }

  #sign(data: string): string {
    return createHmac('sha256', this.#key).update(data).digest('base64url');
  }
}

interface Waiter {
  pred: (c: FakeApiCall) => boolean;
  resolve: (c: FakeApiCall) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export async function startFakeSnykApi(opts: FakeSnykApiOptions): Promise<FakeSnykApi> {
  const deploymentId = opts.deploymentId ?? randomUUID();
  const clientId = opts.clientId ?? randomUUID();
  const clientSecret = opts.clientSecret ?? randomBytes(16).toString('hex');
  const tokens = new TokenIssuer(clientId, opts.tokenTtlSeconds ?? 3600);
  const serverIdFor = opts.serverId ?? (() => '0');
  const calls: FakeApiCall[] = [];
  const waiters = new Set<Waiter>();
  let conns: FakeConnection[] = [];
  let tokenState: TokenEndpointState = 'up';
  const refreshFailure: { left: number; status: number; identifier?: string } = { left: 0, status: 500 };

  const setConnections = (list: FakeConnection[]) => {
    conns = list.map((c) => ({ ...copy(c), id: c.id ?? randomUUID() }));
  };
  setConnections(opts.connections);

  /** A connection with a tunnel (non-null identifier); the broker server lower-cases identifiers. */
  const liveConnection = (identifier: string) => conns.find((c) => c.identifier !== null && c.identifier.toLowerCase() === identifier.toLowerCase());

  const record = (call: FakeApiCall) => {
    calls.push(call);
    for (const w of waiters) {
      if (!w.pred(call)) continue;
      waiters.delete(w);
      clearTimeout(w.timer);
      w.resolve(call);
    }
  };

  const token = (req: IncomingMessage, res: ServerResponse, call: FakeApiCall) => {
    if (tokenState === 'reset') return void req.socket.destroy();
    if (tokenState === 'down') return oauthError(res, 503, 'temporarily_unavailable', 'the token endpoint is down (fake)');
    const form = new URLSearchParams(call.body);
    const creds = clientCredentials(req, form);
    if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) return oauthError(res, 400, 'invalid_request', 'the body must be application/x-www-form-urlencoded');
    if (form.get('grant_type') !== 'client_credentials') return oauthError(res, 400, 'unsupported_grant_type', `grant_type ${form.get('grant_type')} is not client_credentials`);
    if (creds.id !== clientId || creds.secret !== clientSecret) return oauthError(res, 401, 'invalid_client', 'client authentication failed');
    send(res, 200, { access_token: tokens.issue(), token_type: 'bearer', expires_in: tokens.ttlSeconds });
  };

  const connectionsList = (res: ServerResponse, call: FakeApiCall, id: string) => {
    if (!call.query.get('version')) return jsonApiError(res, 400, 'the version query parameter is required');
    if (id !== deploymentId) return jsonApiError(res, 404, `no deployment ${id}`);
    send(res, 200, { jsonapi: { version: '1.0' }, data: conns.map((c) => connectionItem(c, deploymentId)), links: {} }, JSONAPI_TYPE);
  };

  const refresh = (res: ServerResponse, call: FakeApiCall, identifier: string) => {
    let body: { data?: { attributes?: { broker_client_id?: unknown } } } | undefined;
    try {
      body = JSON.parse(call.body) as typeof body;
    } catch {
      body = undefined;
    }
    const role = call.query.get('connection_role');
    // What the broker server answers when it cannot find the client to refresh (authHandlers.js).
    if (!liveConnection(identifier) || (role !== 'primary' && role !== 'secondary') || typeof body?.data?.attributes?.broker_client_id !== 'string') {
      return send(res, 401, 'Missing required authorization header.', 'text/plain; charset=utf-8');
    }
    send(res, 201, 'OK', 'text/plain; charset=utf-8');
  };

  const validate = (res: ServerResponse, call: FakeApiCall, identifier: string) => {
    if (!call.query.get('version')) return jsonApiError(res, 400, 'the version query parameter is required');
    if (!liveConnection(identifier)) return jsonApiError(res, 401, `${identifier} is not a connection of deployment ${deploymentId}`);
    send(res, 201, { jsonapi: { version: '1.0' }, data: { type: 'broker_connection', attributes: {} } }, JSONAPI_TYPE);
  };

  const allocate = async (req: IncomingMessage, res: ServerResponse, call: FakeApiCall, m: RegExpExecArray) => {
    const [, prefix, sha, brokerClientId] = m as unknown as [string, string, string, string];
    if (opts.dispatcherUrl) return forward(res, call, `${opts.dispatcherPrefix ?? prefix}/${sha}/connections/${brokerClientId}`);
    if (!call.query.get('version')) return jsonApiError(res, 400, 'the version query parameter is required');
    if (req.method === 'DELETE') return void res.writeHead(204).end();
    let attrs: { deployment_location?: unknown; broker_token_first_char?: unknown } | undefined;
    try {
      attrs = (JSON.parse(call.body) as { data?: { attributes?: typeof attrs } }).data?.attributes;
    } catch {
      attrs = undefined;
    }
    if (typeof attrs?.deployment_location !== 'string' || typeof attrs.broker_token_first_char !== 'string') {
      return jsonApiError(res, 400, 'data.attributes.deployment_location and broker_token_first_char are required');
    }
    const serverId = serverIdFor(sha, brokerClientId);
    if (serverId === undefined) return jsonApiError(res, 404, 'no server for this connection');
    send(res, 200, { jsonapi: { version: '1.0' }, data: { id: brokerClientId, type: 'broker_connection', attributes: { server_id: serverId } } }, JSONAPI_TYPE);
  };

  /** Passes an allocation call on to the dispatcher (the gateway's part: the bearer stays here). */
  const forward = (res: ServerResponse, call: FakeApiCall, path: string, base = opts.dispatcherUrl!, keepAuthorization = false) =>
    new Promise<void>((resolve) => {
      const headers = { ...call.headers };
      for (const h of ['host', 'connection', 'content-length', 'transfer-encoding', ...(keepAuthorization ? [] : ['authorization'])]) delete headers[h];
      const qs = call.query.toString();
      const target = `${base.replace(/\/+$/, '')}${path}${qs ? `?${qs}` : ''}`;
      const out = httpRequest(target, { method: call.method, headers: { ...headers, 'content-length': String(Buffer.byteLength(call.body)) } }, (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => {
          const pass: Record<string, string> = {};
          for (const h of ['content-type', 'retry-after', 'x-broker-failure']) if (typeof answer.headers[h] === 'string') pass[h] = answer.headers[h];
          res.writeHead(answer.statusCode ?? 502, pass).end(Buffer.concat(chunks));
          resolve();
        });
      });
      out.on('error', (err) => {
        jsonApiError(res, 502, `dispatcher unreachable: ${err.message}`);
        resolve();
      });
      out.end(call.body);
    });

  const route = async (req: IncomingMessage, res: ServerResponse, call: FakeApiCall) => {
    const { method, path } = call;
    if (method === 'POST' && path === '/oauth2/token') return token(req, res, call);
    if (method === 'GET' && path === '/rest/openapi') return send(res, 200, { openapi: '3.0.3', info: { title: 'fake Snyk REST API', version: '3.0.0' }, paths: {} });
    if (method === 'POST' && path.startsWith('/webhook/')) return send(res, 200, { ok: true });
    if (!path.startsWith('/hidden/')) return jsonApiError(res, 404, `no route ${method} ${path}`);
    const refused = tokens.refusal(req.headers.authorization);
    const deployment = /^\/hidden\/brokers\/deployments\/([^/]+)\/connections$/.exec(path);
    const auth = /^\/hidden\/brokers\/connections\/([^/]+)\/auth\/(refresh|validate)$/.exec(path);
    const allocation = /^(\/hidden\/brokers?)\/([^/]+)\/connections\/([^/]+)$/.exec(path);
    const failThis = refreshFailure.identifier === undefined || decodeURIComponent(auth?.[1] ?? '').toLowerCase() === refreshFailure.identifier.toLowerCase();
    if (method === 'POST' && auth?.[2] === 'refresh' && refreshFailure.left > 0 && failThis) {
      refreshFailure.left--;
      return jsonApiError(res, refreshFailure.status, 'refresh failure (fake)');
    }
    const known = (method === 'GET' && deployment) || (method === 'POST' && auth) || ((method === 'POST' || method === 'DELETE') && allocation);
    if (!known) return jsonApiError(res, 404, `no route ${method} ${path}`);
    if (refused) return oauthError(res, 401, 'invalid_token', refused);
    const param = decodeURIComponent((deployment ?? auth)?.[1] ?? '');
    if (deployment) return connectionsList(res, call, param);
    if (auth?.[2] === 'refresh' && opts.refreshUrl) return forward(res, call, path, opts.refreshUrl, true);
    if (auth) return auth[2] === 'refresh' ? refresh(res, call, param) : validate(res, call, param);
    return allocate(req, res, call, allocation!);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const call: FakeApiCall = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
      record(call);
      route(req, res, call).catch((err: Error) => (res.headersSent ? res.destroy() : jsonApiError(res, 500, err.message)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    deploymentId,
    clientId,
    clientSecret,
    calls,
    setConnections,
    connections: () => conns.map(copy),
    tokenEndpoint: (state) => void (tokenState = state),
    revokeAllTokens: () => tokens.revokeAll(),
    failRefresh: (times, status = 500, identifier) => {
      refreshFailure.left = times;
      refreshFailure.status = status;
      refreshFailure.identifier = identifier;
    },
    issueToken: () => tokens.issue(),
    waitForCall: (pred, timeoutMs = 10_000) => {
      const seen = calls.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise<FakeApiCall>((resolve, reject) => {
        const w: Waiter = {
          pred,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.delete(w);
            reject(new Error(`fake Snyk API: no matching call within ${timeoutMs} ms (${calls.length} calls: ${calls.map((c) => `${c.method} ${c.path}`).join(', ')})`));
          }, timeoutMs),
        };
        waiters.add(w);
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const w of waiters) {
          clearTimeout(w.timer);
          w.reject(new Error('fake Snyk API closed'));
        }
        waiters.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** sha256 hex of an identifier, as the HA allocation path carries it. */
/** A Universal Broker client of this fake's deployment: the mode, its credentials, the API, and where its tunnels go. */
export function universalClientEnv(api: FakeSnykApi, serverUrl: string): Record<string, string> {
  return { UNIVERSAL_BROKER_ENABLED: 'true', DEPLOYMENT_ID: api.deploymentId, CLIENT_ID: api.clientId, CLIENT_SECRET: api.clientSecret, API_BASE_URL: api.url, BROKER_SERVER_URL: serverUrl };
}

export function hashedIdentifier(identifier: string): string {
  return createHash('sha256').update(identifier).digest('hex');
}
