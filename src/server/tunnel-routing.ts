import { randomBytes, randomUUID } from 'node:crypto';

/**
 * Behind one shared URL (a Kubernetes Service without affinity) every HTTP request of a client
 * may land on any server. Ids this server hands out therefore name it: an engine.io session id
 * (`sid`, on every polling request and the websocket upgrade after the handshake) and a
 * `streamingID` (in every answer upload) end in `.<serverId>`, so whichever server receives a
 * request can send it to the server that holds the session or waits for the answer, even when
 * the client's `server_id` names another (dead) server. Both ids are opaque to clients.
 */
const OWNER_SEPARATOR = '.';

/** engine.io session id: 20 base64url characters (like engine.io's own) + `.<serverId>`. */
export function createSessionId(serverId: string): string {
  return `${randomBytes(15).toString('base64url')}${OWNER_SEPARATOR}${serverId}`;
}

/** streamingID: a UUID + `.<serverId>`. */
export function createStreamingId(serverId: string): string {
  return `${randomUUID()}${OWNER_SEPARATOR}${serverId}`;
}

/** The server id an id made above ends with; undefined for ids of other origin (old servers, real snyk-broker). */
export function ownerOf(id: string | null | undefined): string | undefined {
  if (!id) return undefined;
  const i = id.indexOf(OWNER_SEPARATOR);
  if (i <= 0 || i === id.length - 1) return undefined;
  const owner = id.slice(i + 1);
  return /^[A-Za-z0-9._~-]{1,128}$/.test(owner) ? owner : undefined;
}

/** Query parameters of a raw request url (`/path?a=b`). */
export function queryOf(rawUrl: string): URLSearchParams {
  const i = rawUrl.indexOf('?');
  return new URLSearchParams(i >= 0 ? rawUrl.slice(i + 1) : '');
}

export type TunnelRoute =
  /** Serve here. */
  | { kind: 'local' }
  /** The request belongs to an engine.io session of `serverId` (its sid says so): only that server can serve it. */
  | { kind: 'session'; serverId: string }
  /** A new tunnel for `serverId` (the client's `server_id`): send it there if it is live, else serve it here. */
  | { kind: 'allocated'; serverId: string };

/**
 * Which server a `/primus/<token>/` request belongs to. A request another server already
 * forwarded is always served here (never forwarded twice).
 */
export function routeTunnelRequest(rawUrl: string, forwardedBy: string | string[] | undefined, selfServerId: string): TunnelRoute {
  if (forwardedBy !== undefined) return { kind: 'local' };
  const query = queryOf(rawUrl);
  const owner = ownerOf(query.get('sid'));
  if (owner !== undefined) return owner === selfServerId ? { kind: 'local' } : { kind: 'session', serverId: owner };
  const wanted = query.get('server_id');
  if (!wanted || wanted === selfServerId) return { kind: 'local' };
  return { kind: 'allocated', serverId: wanted };
}

/**
 * Which server waits for a `POST /response-data/<token>/<streamingID>`: the one named in the
 * streamingID, else the client's `server_id`. undefined = this server (or nobody knows better).
 */
export function answerOwner(streamingID: string, rawUrl: string, selfServerId: string): string | undefined {
  const owner = ownerOf(streamingID) ?? (queryOf(rawUrl).get('server_id') || undefined);
  return owner === selfServerId ? undefined : owner;
}
