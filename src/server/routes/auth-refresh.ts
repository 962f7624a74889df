import type { IncomingMessage, ServerResponse } from 'node:http';
import { FORWARDED_HEADER, forwardHttpRequest } from '../../http/forward.js';
import { BodyTooLargeError, FAILURE_HEADER, readBody, sendFailure } from '../../http/server-helpers.js';
import { FAILURES, type Failure } from '../../protocol/failures.js';
import { maskToken } from '../../protocol/index.js';
import type { Connection } from '../connection.js';
import type { CredentialValidator } from '../credential-validation.js';
import { MISSING_AUTH_MESSAGE } from '../credential-validation.js';
import { peerHopHeaders } from '../peer-auth.js';
import { endUnauthorizedTunnel } from '../stale-credentials.js';
import { BEARER_CHALLENGE } from '../tunnel-auth.js';
import { queryOf } from '../tunnel-routing.js';
import type { ServerParts } from './context.js';
import type { PeerHops } from './peer-hops.js';

const REFRESH_PATH = /^\/hidden\/brokers\/connections\/([^/]+)\/auth\/refresh\/?$/;
/** The body is one small JSON:API document. */
const BODY_LIMIT = 64 * 1024;

/** snyk-broker answers refreshes in plain text ('OK', or why not). */
function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function refuse(res: ServerResponse, failure: Failure, message: string): void {
  sendText(res, failure.status, message, { [FAILURE_HEADER]: failure.reason, ...BEARER_CHALLENGE });
}

/** `{"data":{"attributes":{"broker_client_id":"…"}}}` → the id; undefined when the body is not that. */
function clientIdOf(body: Buffer): string | undefined {
  try {
    const id = (JSON.parse(body.toString('utf8')) as { data?: { attributes?: { broker_client_id?: unknown } } } | null)?.data?.attributes?.broker_client_id;
    return typeof id === 'string' && id.length > 0 ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `POST /hidden/brokers/connections/<identifier>/auth/refresh?connection_role=…` (mandatory auth,
 * universal-broker.md §4): a Universal Broker client renews its credentials every 10 minutes. The
 * tunnels of that identifier, client id and role are revalidated (AUTHORIZATION_SERVICE, 201
 * passes): their validation time moves on, or they are ended. In HA mode a refresh naming
 * another server (`server_id`) is passed on to it, since the tunnel lives there.
 */
export function createAuthRefresh(parts: ServerParts, hops: PeerHops, validator: CredentialValidator) {
  const { config, logger, egress, metrics, tunnels, routing } = parts;
  const clientIdHeader = config.mandatoryAuth?.refreshClientIdHeader;

  /** Passes the refresh on to the server `server_id` names; false when it is this one, unknown, or the request was forwarded already. */
  async function toPeer(req: IncomingMessage, res: ServerResponse, rawUrl: string): Promise<boolean> {
    const wanted = queryOf(rawUrl).get('server_id');
    if (!routing || !wanted || wanted === config.serverId || req.headers[FORWARDED_HEADER] !== undefined || routing.isUnreachable(wanted)) return false;
    const peer = await routing.findServer(wanted);
    if (!peer) return false;
    try {
      await forwardHttpRequest(egress, req, res, peer.peerUrl, peerHopHeaders(config.serverId, config.internalSecret));
    } catch (err) {
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return true;
      }
      hops.failed(peer, err, 'auth refresh');
      req.resume();
      sendFailure(res, FAILURES.PEER_UNREACHABLE, { message: `the broker server holding this tunnel (${peer.serverId}) could not be reached` });
    }
    return true;
  }

  return async function refresh(req: IncomingMessage, res: ServerResponse, path: string, rawUrl: string): Promise<void> {
    const m = REFRESH_PATH.exec(path);
    if (!m || req.method !== 'POST') {
      req.resume();
      return sendFailure(res, FAILURES.NOT_FOUND, { ok: false });
    }
    let identifier: string;
    try {
      identifier = decodeURIComponent(m[1]).toLowerCase();
    } catch {
      req.resume();
      return sendFailure(res, FAILURES.BAD_REQUEST, { message: 'undecodable path' });
    }
    if (await toPeer(req, res, rawUrl)) return;
    const role = queryOf(rawUrl).get('connection_role') ?? '';
    let body: Buffer;
    try {
      body = await readBody(req, BODY_LIMIT);
    } catch (err) {
      req.resume();
      if (err instanceof BodyTooLargeError) return sendFailure(res, FAILURES.BODY_TOO_LARGE, { message: `body above ${BODY_LIMIT} bytes` });
      return sendFailure(res, FAILURES.BAD_REQUEST, { message: 'unreadable body' });
    }
    const brokerClientId = clientIdOf(body);
    if (!brokerClientId) return sendFailure(res, FAILURES.BAD_REQUEST, { message: 'expected {"data":{"attributes":{"broker_client_id":"..."}}}' });
    const log: Record<string, unknown> = { maskedToken: maskToken(identifier), brokerClientId, role };
    if (clientIdHeader) log.brokerAppClientId = req.headers[clientIdHeader] ?? 'not available';
    logger.debug(log, 'auth refresh');

    const matching: Connection[] = [...tunnels.connections()].filter(
      (c) => c.state !== 'closed' && c.pathToken === identifier && c.credentials?.brokerClientId === brokerClientId && c.credentials.role === role,
    );
    if (matching.length === 0) {
      metrics.authChecks.inc({ kind: 'refresh', outcome: FAILURES.AUTH_UNKNOWN_TUNNEL.reason });
      logger.warn(log, 'auth refresh for a client id and role that hold no tunnel here');
      return refuse(res, FAILURES.AUTH_UNKNOWN_TUNNEL, MISSING_AUTH_MESSAGE);
    }
    const v = await validator.validate('refresh', identifier, req.headers, brokerClientId);
    metrics.authChecks.inc({ kind: 'refresh', outcome: v.ok ? 'accepted' : v.failure.reason });
    if (!v.ok) {
      logger.warn({ ...log, reason: v.failure.reason, tunnels: matching.length }, 'auth refresh refused: ending the tunnel');
      for (const conn of matching) endUnauthorizedTunnel(conn);
      return refuse(res, v.failure, v.message);
    }
    const now = Date.now();
    for (const conn of matching) conn.credentials!.credsValidationTime = now;
    sendText(res, 201, 'OK');
  };
}
