import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { isUuid } from '../protocol/index.js';
import { HOP_BY_HOP } from '../http/server-helpers.js';

/** Headers whose UUID value becomes the request id, in this order (protocol.md §3.1). */
const REQUEST_ID_HEADERS = ['x-akamai-request-id', 'x-request-id', 'snyk-request-id', 'x-github-delivery', 'x-gitlab-event-uuid'];

export function requestIdOf(headers: IncomingHttpHeaders): string {
  for (const name of REQUEST_ID_HEADERS) {
    const v = headers[name];
    const value = Array.isArray(v) ? v[0] : v;
    if (value && isUuid(value.trim())) return value.trim();
  }
  return randomUUID();
}

export interface BrokerPath {
  token: string;
  /** Path + query as the client's origin should see it. */
  url: string;
  /** The /ctx/<uuid>/ value, when present. */
  contextId?: string;
}

const CTX = /\/ctx\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?=\/|$)/i;

/** Drops every `connection_role` query parameter, leaving the rest byte for byte. */
export function stripConnectionRole(query: string): string {
  if (!query) return '';
  const kept = query.split('&').filter((part) => {
    const name = part.split('=', 1)[0];
    let decoded = name;
    try {
      decoded = decodeURIComponent(name.replace(/\+/g, ' '));
    } catch {
      // keep undecodable names as they are
    }
    return decoded !== 'connection_role';
  });
  return kept.join('&');
}

/**
 * `/broker/<token>/<rest>?<query>` → token, `/<rest>?<query>` without /ctx/<uuid> and
 * connection_role. Returns undefined when the path is not a broker path.
 */
export function parseBrokerPath(rawUrl: string): BrokerPath | undefined {
  const q = rawUrl.indexOf('?');
  const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
  const query = q >= 0 ? rawUrl.slice(q + 1) : '';
  const m = /^\/broker\/([^/?#]+)(\/.*)?$/.exec(path);
  if (!m) return undefined;
  let token: string;
  try {
    token = decodeURIComponent(m[1]).toLowerCase();
  } catch {
    return undefined;
  }
  let rest = m[2] ?? '/';
  let contextId: string | undefined;
  const ctx = CTX.exec(rest);
  if (ctx) {
    contextId = ctx[1]!;
    rest = rest.slice(0, ctx.index) + rest.slice(ctx.index + ctx[0].length);
    if (!rest.startsWith('/')) rest = `/${rest}`;
  }
  const kept = stripConnectionRole(query);
  return { token, url: kept ? `${rest}?${kept}` : rest, contextId };
}

/** The platform's headers as relayed to the client: as received, minus hop-by-hop, plus the ids. */
export function relayHeaders(headers: IncomingHttpHeaders, requestId: string, contextId?: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HOP_BY_HOP.has(k)) continue;
    out[k] = v;
  }
  out['snyk-request-id'] = requestId;
  if (contextId) out['x-snyk-broker-context-id'] = contextId;
  return out;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
/** Answer header names seen lately → lowercase name, or '' when it never goes to the platform. */
const relayableNames = new Map<string, string>();
const MAX_REMEMBERED_NAMES = 1024;

/** The name an answer header goes to the platform under; undefined for hop-by-hop and invalid names. */
function relayableName(k: string): string | undefined {
  let name = relayableNames.get(k);
  if (name === undefined) {
    const lower = k.toLowerCase();
    name = HOP_BY_HOP.has(lower) || !TOKEN.test(lower) ? '' : lower;
    // Origins send a small set of names again and again; a flood of unique ones is not kept.
    if (relayableNames.size < MAX_REMEMBERED_NAMES) relayableNames.set(k, name);
  }
  return name === '' ? undefined : name;
}

/** Headers from a client's answer that may go to the platform (hop-by-hop ones never do). */
export function answerHeaders(headers: Record<string, unknown> | undefined): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (!headers) return out;
  for (const [k, v] of Object.entries(headers)) {
    const name = relayableName(k);
    if (name === undefined) continue;
    if (typeof v === 'string') out[name] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[name] = String(v);
    else if (Array.isArray(v)) out[name] = v.map(String);
  }
  return out;
}

export const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
