import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FAILURE_HEADER } from '../http/server-helpers.js';

/** A connection of the demo deployment, as Snyk's API lists it. */
export interface DemoConnection {
  /** Its name in the deployment (the client labels its logs and metrics with it). */
  name: string;
  /** The broker type: github, gitlab, ... */
  type: string;
  /** The tunnel token. */
  identifier: string;
  /** configuration.required: literal values or `${ENV}` references the client resolves from its environment. */
  required: Record<string, string>;
}

/** What the demo's Snyk API was asked, for the status lines. */
export interface SnykApiCounts {
  tokens: number;
  lists: number;
  refreshes: number;
  allocations: number;
  refused: number;
}

export interface DemoSnykApi {
  readonly url: string;
  readonly deploymentId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly counts: SnykApiCounts;
  close(): Promise<void>;
}

const TOKEN_TTL_SECONDS = 3600;

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

function error(res: ServerResponse, status: number, detail: string): void {
  send(res, status, { jsonapi: { version: '1.0' }, errors: [{ status: String(status), detail }] }, 'application/vnd.api+json');
}

function lowerKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k.toLowerCase(), v]));
}

/** The JSON:API item of a connection (universal-broker.md §2.2). */
function connectionItem(c: DemoConnection, id: string, deploymentId: string): unknown {
  return {
    id,
    type: 'broker_connection',
    attributes: { name: c.name, deployment_id: deploymentId, identifier: c.identifier, configuration: { type: c.type, default: {}, required: lowerKeys(c.required) } },
    relationships: [],
  };
}

/** An allocation call passed on to the dispatcher, under its own prefix; its answer comes back as is. */
function forward(res: ServerResponse, target: string, method: string, contentType: string | undefined, body: Buffer): void {
  const headers: Record<string, string> = { 'content-length': String(body.length) };
  if (contentType) headers['content-type'] = contentType;
  const out = request(target, { method, headers }, (answer) => {
    const chunks: Buffer[] = [];
    answer.on('data', (c: Buffer) => chunks.push(c));
    answer.on('end', () => {
      const pass: Record<string, string> = {};
      for (const h of ['content-type', 'retry-after', FAILURE_HEADER]) if (typeof answer.headers[h] === 'string') pass[h] = answer.headers[h];
      res.writeHead(answer.statusCode ?? 502, pass).end(Buffer.concat(chunks));
    });
    answer.on('error', () => res.destroy());
  });
  out.on('error', (err) => error(res, 502, `dispatcher unreachable: ${err.message}`));
  out.end(body);
}

/**
 * The demo's stand-in for Snyk's API, serving exactly what a Universal Broker client needs: OAuth
 * client credentials, the deployment's connections, auth refresh, and HA allocation (passed on to
 * the demo's dispatcher, which serves it under `dispatcherPrefix`). Every /hidden call needs a
 * bearer token it issued. Not a test double: it checks little beyond what the client sends.
 */
export async function startDemoSnykApi(o: { connections: DemoConnection[]; dispatcherUrl: string; dispatcherPrefix: string }): Promise<DemoSnykApi> {
  const deploymentId = randomUUID();
  const clientId = randomUUID();
  const clientSecret = randomBytes(16).toString('hex');
  const ids = new Map(o.connections.map((c) => [c.name, randomUUID()]));
  const tokens = new Set<string>();
  const counts: SnykApiCounts = { tokens: 0, lists: 0, refreshes: 0, allocations: 0, refused: 0 };

  const route = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://snyk-api');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (method === 'GET' && path === '/rest/openapi') return send(res, 200, { openapi: '3.0.3', info: { title: 'demo Snyk API', version: '3.0.0' }, paths: {} });
    if (method === 'POST' && path === '/oauth2/token') {
      const form = new URLSearchParams(body.toString('utf8'));
      if (form.get('grant_type') !== 'client_credentials') return send(res, 400, { error: 'unsupported_grant_type', error_description: 'grant_type must be client_credentials' });
      if (form.get('client_id') !== clientId || form.get('client_secret') !== clientSecret) {
        counts.refused++;
        return send(res, 401, { error: 'invalid_client', error_description: 'client authentication failed' });
      }
      const token = randomBytes(24).toString('base64url');
      tokens.add(token);
      counts.tokens++;
      return send(res, 200, { access_token: token, token_type: 'bearer', expires_in: TOKEN_TTL_SECONDS });
    }
    if (!path.startsWith('/hidden/')) return error(res, 404, `no route ${method} ${path}`);
    const bearer = /^bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!bearer || !tokens.has(bearer)) {
      counts.refused++;
      return send(res, 401, { error: 'invalid_token', error_description: 'missing or unknown bearer token' });
    }
    const list = /^\/hidden\/brokers\/deployments\/([^/]+)\/connections$/.exec(path);
    if (method === 'GET' && list) {
      if (decodeURIComponent(list[1]) !== deploymentId) return error(res, 404, `no deployment ${list[1]}`);
      counts.lists++;
      return send(res, 200, { jsonapi: { version: '1.0' }, data: o.connections.map((c) => connectionItem(c, ids.get(c.name)!, deploymentId)), links: {} }, 'application/vnd.api+json');
    }
    const refresh = /^\/hidden\/brokers\/connections\/([^/]+)\/auth\/refresh$/.exec(path);
    if (method === 'POST' && refresh) {
      if (!o.connections.some((c) => c.identifier === decodeURIComponent(refresh[1]))) return error(res, 401, 'unknown connection');
      counts.refreshes++;
      return send(res, 201, 'OK', 'text/plain; charset=utf-8');
    }
    const allocation = /^\/hidden\/brokers?\/([0-9a-f]{64})\/connections\/([^/]+)$/.exec(path);
    if ((method === 'POST' || method === 'DELETE') && allocation) {
      if (method === 'POST') counts.allocations++;
      return forward(res, `${o.dispatcherUrl}${o.dispatcherPrefix}/${allocation[1]}/connections/${allocation[2]}${url.search}`, method, req.headers['content-type'], body);
    }
    return error(res, 404, `no route ${method} ${path}`);
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => route(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    deploymentId,
    clientId,
    clientSecret,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
