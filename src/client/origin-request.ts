import { HOP_BY_HOP } from '../http/server-helpers.js';
import { isUuid, type RelayRequest } from '../protocol/index.js';

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

/** `/ctx/<uuid>` at the start of the url is routing context, not part of the origin path. */
export function stripContext(url: string): { url: string; contextId?: string } {
  const m = /^\/ctx\/([^/?#]+)(?=[/?#]|$)/.exec(url);
  if (!m || !isUuid(m[1])) return { url };
  const rest = url.slice(m[0].length);
  return { url: rest.startsWith('/') ? rest : `/${rest}`, contextId: m[1] };
}

/**
 * The headers an origin receives: the platform's minus hop-by-hop and platform-only ones, our
 * user agent, a request id, and the accept rule's credential as Authorization when it has one.
 */
export function originHeaders(req: RelayRequest, requestId: string, authorization: string | undefined, wireVersion: string, removeXForwarded: boolean): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const headers = req.headers;
  // Keys, not entries: no [name, value] pair allocated per header per request.
  for (const k of Object.keys(headers)) {
    const name = k.toLowerCase();
    if (HOP_BY_HOP.has(name) || STRIPPED.has(name) || name.startsWith('snyk-acting-')) continue;
    if (removeXForwarded && name.startsWith('x-forwarded-')) continue;
    out[name] = headers[k]!;
  }
  const ua = req.headers['user-agent'];
  if (ua !== undefined) out['x-broker-origin-ua'] = ua;
  out['user-agent'] = `Snyk Broker Client ${wireVersion}`;
  out['x-request-id'] ??= requestId;
  if (authorization) out.authorization = authorization;
  return out;
}
