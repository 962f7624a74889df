/**
 * Every `x-broker-failure` reason that the server, the client and the dispatcher send: one table, so
 * a reason that one program sends and another reads (a server that forwarded a request reads its
 * peer's reason) cannot drift. Each entry gives the wire string, the HTTP status, which programs
 * send it and whether the same request may be sent again. Documented for operators in
 * docs/failures.md (a unit test keeps the two in step).
 *
 * It lives here because protocol/ imports nothing of ours, so client/, server/ and dispatcher/ may
 * all read it. http/ may not import it. Its helpers take any `{ reason, status }`, so callers
 * pass these entries to them.
 */

/** The programs that answer with a failure reason. */
export type Program = 'server' | 'client' | 'dispatcher';

/**
 * Whether the same request may be sent again after this failure.
 * - `here`: to the same place, once the condition passes (after `Retry-After` when given).
 * - `elsewhere`: `true` when nothing reached a broker client or an origin, so another broker
 *   server (or another replica) may take it now, and a server that forwarded the request tries
 *   its next target. `'if-marked'`: only when the answer also carries
 *   `x-broker-retry-elsewhere: true`.
 */
export interface Retry {
  readonly here: boolean;
  readonly elsewhere: boolean | 'if-marked';
}

export interface Failure {
  /** The stable code: the `x-broker-failure` reason in upper snake case (the dispatcher's JSON:API `code`). */
  readonly code: string;
  /** The `x-broker-failure` header value on the wire. */
  readonly reason: string;
  readonly status: number;
  readonly from: readonly Program[];
  readonly retry: Retry;
  /** When it is sent, for operators (docs/failures.md). */
  readonly meaning: string;
}

/** Set by a server on a `tunnel-closed` answer when the request may go to another server (retry `'if-marked'`). */
export const RETRY_ELSEWHERE_HEADER = 'x-broker-retry-elsewhere';

const NO: Retry = { here: false, elsewhere: false };
const LATER: Retry = { here: true, elsewhere: false };
const ANYWHERE: Retry = { here: true, elsewhere: true };
const ELSEWHERE: Retry = { here: false, elsewhere: true };

type Row = Omit<Failure, 'code'>;

function table<K extends string>(rows: Record<K, Row>): { readonly [P in K]: Failure & { readonly code: P } } {
  const out = {} as Record<string, Failure>;
  for (const [code, row] of Object.entries(rows) as [K, Row][]) out[code] = Object.freeze({ code, ...row });
  return Object.freeze(out) as { readonly [P in K]: Failure & { readonly code: P } };
}

export const FAILURES = table({
  // Any program: the request itself is refused.
  BAD_REQUEST: { reason: 'bad-request', status: 400, from: ['server', 'client'], retry: NO, meaning: 'a malformed request: a path or method the endpoint does not take, an unreadable body, or framing the HTTP parser refuses (Content-Length with Transfer-Encoding, two Content-Lengths, bad chunk sizes, bare-LF line ends: request-smuggling vectors; the connection is closed)' },
  HEADERS_TOO_LARGE: { reason: 'headers-too-large', status: 431, from: ['server', 'client'], retry: NO, meaning: "request line and headers above Node's 16 KiB (`--max-http-header-size`); the connection is closed" },
  HEADERS_TIMEOUT: { reason: 'headers-timeout', status: 408, from: ['server', 'client'], retry: NO, meaning: 'the request headers did not arrive in time (`BROKER_SERVER_HEADERS_TIMEOUT_MS` on the server); the connection is closed' },
  BODY_TOO_LARGE: { reason: 'body-too-large', status: 413, from: ['server', 'client', 'dispatcher'], retry: NO, meaning: 'request body above the limit (`BROKER_SERVER_BODY_LIMIT`, `BROKER_CLIENT_WEBHOOK_BODY_LIMIT`, 64 KiB at the dispatcher and for an auth refresh); refused from a declared Content-Length before reading' },
  FILTER_BLOCKED: { reason: 'filter-blocked', status: 401, from: ['server', 'client'], retry: NO, meaning: 'no accept rule allows the request (the public rules: the server for platform requests, the client for webhooks), or its path is not normalized (`..`, `%2e%2e`, backslashes)' },
  INTERNAL_SECRET_REQUIRED: { reason: 'internal-secret-required', status: 401, from: ['server', 'dispatcher'], retry: NO, meaning: 'a request claiming to come from a peer server, or a call to the dispatcher\'s `/internal` API, without the valid `x-broker-internal-secret` (`BROKER_INTERNAL_SECRET`)' },
  NOT_FOUND: { reason: 'not-found', status: 404, from: ['server', 'dispatcher'], retry: NO, meaning: 'no such endpoint' },
  INTERNAL_ERROR: { reason: 'internal-error', status: 500, from: ['server', 'client', 'dispatcher'], retry: NO, meaning: 'an unexpected error in the handler (logged)' },

  // Broker server: platform requests (/broker/...) and the tunnel endpoint.
  NO_CONNECTION: { reason: 'no-connection', status: 404, from: ['server', 'client'], retry: ANYWHERE, meaning: 'no tunnel for the token: on the server (body `{"ok":false}`), also `/connection-status`; at the client (as 503 + `Retry-After: 1`) a webhook while no tunnel is open and no API fallback is set. Nothing was relayed; a server that forwarded the request tries its next target' },
  CONNECTION_NOT_READY: { reason: 'connection-not-ready', status: 503, from: ['server'], retry: ANYWHERE, meaning: "with `Retry-After: 1`: the token's last tunnel closed less than 60 s ago, or its tunnels are all heartbeat-late, or all draining with no new one within `BROKER_SERVER_RECONNECT_WAIT_MS`. Nothing was relayed" },
  SERVER_DRAINING: { reason: 'server-draining', status: 503, from: ['server'], retry: ELSEWHERE, meaning: 'with `Retry-After: 1`: this server is shutting down and no peer could take the request (also new tunnels and `/service` calls). Nothing was relayed' },
  TUNNEL_CLOSED: { reason: 'tunnel-closed', status: 502, from: ['server', 'client'], retry: { here: false, elsewhere: 'if-marked' }, meaning: "the tunnel dropped after the request was sent and it could not be retried (non-idempotent and no answer upload within `BROKER_SERVER_ANSWER_GRACE_MS`, or no other connection here or on a peer, and for an idempotent request no reconnect within `BROKER_SERVER_RECONNECT_WAIT_MS`); at the client, a webhook's tunnel closed before the server's ack. With `x-broker-retry-elsewhere: true` the request never reached a client or is idempotent, so a server that forwarded it tries its next target" },
  PEER_FAILED: { reason: 'peer-failed', status: 502, from: ['server'], retry: NO, meaning: 'a non-idempotent request forwarded to a peer server that failed after it was sent (it is not sent twice)' },
  PEER_UNREACHABLE: { reason: 'peer-unreachable', status: 502, from: ['server'], retry: NO, meaning: 'an answer upload (`/response-data`) or, under mandatory auth, an auth refresh for another server, and that server could not be reached' },
  BAD_RESPONSE: { reason: 'bad-response', status: 502, from: ['server'], retry: NO, meaning: "the client's answer was truncated or not parsable" },
  RELAY_ERROR: { reason: 'relay-error', status: 502, from: ['server'], retry: NO, meaning: 'the relay failed unexpectedly (logged); the request may have reached the origin' },
  RESPONSE_TIMEOUT: { reason: 'response-timeout', status: 504, from: ['server'], retry: NO, meaning: 'no answer within `BROKER_SERVER_REQUEST_TIMEOUT_MS`; the request may have reached the origin' },
  NOT_IMPLEMENTED: { reason: 'not-implemented', status: 501, from: ['server'], retry: NO, meaning: '`/service/...` to a snyk-broker client before 4.209.0' },
  FRAME_TOO_LARGE: { reason: 'frame-too-large', status: 413, from: ['server'], retry: NO, meaning: 'a long-polling tunnel upload declared above `SOCKET_MAX_RESPONSE_LENGTH`' },

  // Broker server, mandatory-auth mode (BROKER_SERVER_MANDATORY_AUTH_ENABLED): Universal Broker tunnels, refreshes, answer uploads.
  AUTH_REQUIRED: { reason: 'auth-required', status: 401, from: ['server'], retry: NO, meaning: "with `WWW-Authenticate: Bearer`: mandatory auth is on and a tunnel handshake lacks `authorization: bearer ...` or `x-snyk-broker-client-id`, an auth refresh lacks `authorization`, or a `/hidden/brokers/response-data` upload lacks `authorization`" },
  AUTH_INVALID: { reason: 'auth-invalid', status: 401, from: ['server'], retry: NO, meaning: "with `WWW-Authenticate: Bearer`: mandatory auth is on and the validation endpoint (`GATEWAY_HOSTNAME`, `AUTHORIZATION_SERVICE` for refreshes) answered other than 201 for the bearer token (a refresh also ends the tunnel), or an answer upload's JWT `azp` is not the one its tunnel was validated with" },
  AUTH_UNAVAILABLE: { reason: 'auth-unavailable', status: 401, from: ['server'], retry: LATER, meaning: 'with `WWW-Authenticate: Bearer`: mandatory auth is on and the validation endpoint could not be reached or did not answer within `BROKER_SERVER_AUTH_TIMEOUT_MS`; the tunnel is refused (a refresh also ends the tunnel)' },
  AUTH_UNKNOWN_TUNNEL: { reason: 'auth-unknown-tunnel', status: 401, from: ['server'], retry: NO, meaning: 'an auth refresh (`/hidden/brokers/connections/<id>/auth/refresh`) for a client id and `connection_role` that hold no tunnel of that identifier on this server' },

  // Broker client: webhooks and the local endpoints.
  CLIENT_DRAINING: { reason: 'client-draining', status: 503, from: ['client'], retry: ELSEWHERE, meaning: 'with `Retry-After: 1`: the client is shutting down: `/readyz`, and webhooks once its tunnels are closing (until then they are still relayed); another replica may take the webhook' },
  NOT_READY: { reason: 'not-ready', status: 503, from: ['client'], retry: LATER, meaning: '`/readyz` while no tunnel is ready' },
  WEBHOOK_TIMEOUT: { reason: 'webhook-timeout', status: 504, from: ['client'], retry: NO, meaning: "the server did not ack a webhook in time; it may have been delivered" },
  BAD_ANSWER: { reason: 'bad-answer', status: 502, from: ['client'], retry: NO, meaning: "the server's ack to a webhook was not a valid answer" },
  API_FALLBACK_FAILED: { reason: 'api-fallback-failed', status: 502, from: ['client'], retry: NO, meaning: 'no tunnel was open and posting the webhook straight to `API_BASE_URL` failed' },
  UNKNOWN_CHECK: { reason: 'unknown-check', status: 404, from: ['client'], retry: NO, meaning: '`/health/checks/<id>` for an id that does not exist' },
  ORIGIN_VARIABLE_UNSET: { reason: 'origin-variable-unset', status: 502, from: ['client'], retry: NO, meaning: "the matching private accept rule's origin is empty because its `${VAR}`s are not set on the client; the header names them after the reason (`origin-variable-unset: GIT_CLIENT_URL`), as does the body (code `ORIGIN_VARIABLE_UNSET`)" },
  GITHUB_APP_TOKEN_UNAVAILABLE: { reason: 'github-app-token-unavailable', status: 503, from: ['client'], retry: LATER, meaning: "the matching private rule sends the GitHub App's installation token (`${GHA_ACCESS_TOKEN}`, `${JWT_TOKEN}`) and no valid one could be had within 15 s (GitHub unreachable, or it refuses the App); the request was not sent, never with an expired token. The body says what GitHub answered" },
  GIT_TREE_REFUSED: { reason: 'git-tree-refused', status: 401, from: ['client'], retry: NO, meaning: "commit signing is on and a `POST .../git/trees` would create a symlink (mode `120000`, not a deletion), or its body is not a tree payload; 401 and a plain-text body as snyk-broker answers. Not sent" },
  COMMIT_PAYLOAD_INVALID: { reason: 'commit-payload-invalid', status: 400, from: ['client'], retry: NO, meaning: 'commit signing is on and a `POST .../git/commits` body cannot be signed as it is (not JSON, no author, a tree or parent that is not a full SHA); the plain-text body names the field. Not sent (snyk-broker sends it unsigned)' },
  COMMIT_SIGNING_FAILED: { reason: 'commit-signing-failed', status: 500, from: ['client'], retry: NO, meaning: 'commit signing is on and signing the commit failed (the key expired since the start, say; logged). Not sent, never unsigned' },
  FILTERS_RELOAD_FAILED: { reason: 'filters-reload-failed', status: 500, from: ['client'], retry: NO, meaning: '`POST /filters` with accept rules that would not pass the start-up checks; the old rules stay' },
  UNKNOWN_CONTEXT: { reason: 'unknown-context', status: 404, from: ['client'], retry: NO, meaning: 'Universal Broker: the request names a context (`x-snyk-broker-context-id`, or `/ctx/<uuid>` in the path) that its connection does not have, or one that is off because a credential reference of it is not set (the start logs which). Not sent' },
  UNKNOWN_REQUEST_TYPE: { reason: 'unknown-request-type', status: 401, from: ['client'], retry: NO, meaning: 'Universal Broker: a local request (a webhook) whose path names no type of a connection with an open tunnel (`/webhook/<type>/...`); Snyk answers 401 "Unknown request type" too' },

  // Dispatcher: the allocation API and the servers' /internal API (JSON:API errors; `code` is this entry's code).
  NO_LIVE_SERVER: { reason: 'no-live-server', status: 503, from: ['dispatcher'], retry: LATER, meaning: 'with `Retry-After`: no broker server is in placement' },
  STORE_UNAVAILABLE: { reason: 'store-unavailable', status: 503, from: ['dispatcher'], retry: LATER, meaning: 'the store (Redis) cannot be reached: allocations and `/internal` calls (with `Retry-After`), and `/readyz`' },
  WARMING_UP: { reason: 'warming-up', status: 429, from: ['dispatcher'], retry: LATER, meaning: 'with `Retry-After`: a new client id during `DISPATCHER_STARTUP_GRACE_MS` after a start that found servers already running' },
  MAX_CLIENTS_PER_TOKEN: { reason: 'max-clients-per-token', status: 429, from: ['dispatcher'], retry: LATER, meaning: 'with `Retry-After`: the token already has `MAX_CLIENTS_PER_TOKEN` clients allocated' },
  METHOD_NOT_ALLOWED: { reason: 'method-not-allowed', status: 405, from: ['dispatcher'], retry: NO, meaning: 'a method the endpoint does not take (`Allow` lists the ones it does)' },
  INVALID_HASHED_TOKEN: { reason: 'invalid-hashed-token', status: 400, from: ['dispatcher'], retry: NO, meaning: 'the token in the path is not 64 hex characters' },
  INVALID_CLIENT_ID: { reason: 'invalid-client-id', status: 400, from: ['dispatcher'], retry: NO, meaning: 'a client id (path or `broker_client_id`) with characters outside `A-Za-z0-9._~:-` or longer than 128' },
  MISSING_CLIENT_ID: { reason: 'missing-client-id', status: 400, from: ['dispatcher'], retry: NO, meaning: 'a connection report without `broker_client_id`' },
  INVALID_SERVER_ID: { reason: 'invalid-server-id', status: 400, from: ['dispatcher'], retry: NO, meaning: 'a server id with characters outside `A-Za-z0-9._~:-` or longer than 253' },
  INVALID_BODY: { reason: 'invalid-body', status: 400, from: ['dispatcher'], retry: NO, meaning: 'the request body is not JSON' },
  INVALID_ATTRIBUTE: { reason: 'invalid-attribute', status: 400, from: ['dispatcher'], retry: NO, meaning: 'an attribute of the wrong type (`peer_url` not an http(s) URL, or with credentials)' },
  INVALID_REQUEST_TYPE: { reason: 'invalid-request-type', status: 400, from: ['dispatcher'], retry: NO, meaning: '`request_type` is neither `client-connected` nor `client-pinged`' },
});

export type FailureCode = keyof typeof FAILURES;

/**
 * The client's webhook server says `no-connection` with 503 and `Retry-After`, not the server's
 * 404: an SCM retries a webhook that got a 5xx and drops one that got a 4xx.
 */
export const WEBHOOK_NO_CONNECTION: Failure = Object.freeze({ ...FAILURES.NO_CONNECTION, status: 503 });

/** What Node's HTTP parser refusals are answered with (http/server-helpers' clientErrorHandler). */
export const PARSER_FAILURES = Object.freeze({ headersTooLarge: FAILURES.HEADERS_TOO_LARGE, headersTimeout: FAILURES.HEADERS_TIMEOUT, malformed: FAILURES.BAD_REQUEST });

const BY_REASON: ReadonlyMap<string, Failure> = new Map(Object.values<Failure>(FAILURES).map((f) => [f.reason, f]));

/** The table entry for a wire reason, if it is one of ours. */
export function failureOf(reason: unknown): Failure | undefined {
  return typeof reason === 'string' ? BY_REASON.get(reason) : undefined;
}

/**
 * Whether a broker server's failure answer lets a server that forwarded the request try another
 * target: a reason a server sends, with its own status, that says nothing was relayed (or, for
 * `'if-marked'`, the answer carries `x-broker-retry-elsewhere: true`).
 */
export function peerMayRetryElsewhere(status: number, reason: unknown, marked: boolean): boolean {
  const f = failureOf(reason);
  if (!f || !f.from.includes('server') || f.status !== status) return false;
  return f.retry.elsewhere === true || (f.retry.elsewhere === 'if-marked' && marked);
}
