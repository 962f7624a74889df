import type { ResponseTarget } from './response-writer.js';

/**
 * The URL of `POST [prefix]/response-data/<token>/<streamingID>?[server_id=..&]connection_role=..`
 * (prefix `/hidden/brokers` for Universal Broker connections).
 */
export function responseDataUrl(target: Pick<ResponseTarget, 'serverUrl' | 'serverId' | 'role' | 'streamingID'>, token: string, pathPrefix = ''): string {
  const params = new URLSearchParams();
  if (target.serverId) params.set('server_id', String(target.serverId));
  params.set('connection_role', target.role);
  return `${target.serverUrl.replace(/\/+$/, '')}${pathPrefix}/response-data/${encodeURIComponent(token)}/${encodeURIComponent(target.streamingID)}?${params.toString()}`;
}

/** Origin and path of a target's response-data URL, split once per server and role (not per answer). */
export interface UrlParts {
  origin: string;
  /** Path up to the encoded streamingID. */
  prefix: string;
  /** `?...` */
  query: string;
}

const STREAMING_ID_SLOT = 'x';

function urlParts(target: Pick<ResponseTarget, 'serverUrl' | 'serverId' | 'role'>, token: string, pathPrefix: string): UrlParts {
  const url = new URL(responseDataUrl({ ...target, streamingID: STREAMING_ID_SLOT }, token, pathPrefix));
  return { origin: url.origin, prefix: url.pathname.slice(0, -STREAMING_ID_SLOT.length), query: url.search };
}

/** The URL parts of a target, remembered per server and role. */
export function createUrlPartsCache(token: string, pathPrefix = ''): (target: ResponseTarget) => UrlParts {
  // A client has one or two tunnels (roles), each on one server at a time: a short list compared
  // field by field finds them without building a key string per answer.
  let known: Array<{ serverUrl: string; serverId: string | number | undefined; role: string; parts: UrlParts }> = [];
  return function partsFor(target: ResponseTarget): UrlParts {
    for (const k of known) if (k.serverUrl === target.serverUrl && k.serverId === target.serverId && k.role === target.role) return k.parts;
    const parts = urlParts(target, token, pathPrefix);
    // Placements change rarely; a bound keeps a long-lived client from collecting stale ones.
    if (known.length >= 8) known = known.slice(1);
    known.push({ serverUrl: target.serverUrl, serverId: target.serverId, role: target.role, parts });
    return parts;
  };
}
