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
  const parts = new Map<string, UrlParts>();
  return function partsFor(target: ResponseTarget): UrlParts {
    const key = `${target.serverUrl}\n${target.serverId ?? ''}\n${target.role}`;
    let p = parts.get(key);
    if (!p) {
      p = urlParts(target, token, pathPrefix);
      // Placements change rarely; a bound keeps a long-lived client from collecting stale ones.
      if (parts.size >= 64) parts.clear();
      parts.set(key, p);
    }
    return p;
  };
}
