import type { IncomingMessage, ServerResponse } from 'node:http';
import { FORWARDED_HEADER, forwardHttpRequest } from '../../http/forward.js';
import { sendFailure, sendJson } from '../../http/server-helpers.js';
import { FAILURES, type Failure } from '../../protocol/failures.js';
import { jwtAzp } from '../bearer.js';
import { peerHopHeaders } from '../peer-auth.js';
import type { RelayAttempt } from '../relay-attempt.js';
import { httpReceipt } from '../answer-intake.js';
import { UNKNOWN_STREAM_MESSAGE } from '../relay.js';
import { BEARER_CHALLENGE } from '../tunnel-auth.js';
import { answerOwner } from '../tunnel-routing.js';
import type { ServerParts } from './context.js';
import type { PeerHops } from './peer-hops.js';

/** `/response-data/…`, or under mandatory auth `/hidden/brokers/response-data/…` (the router lets through only the mode's own). */
const RESPONSE_DATA_PATH = /^(?:\/hidden\/brokers)?\/response-data\/([^/]+)\/([^/]+)\/?$/;

/**
 * POST /response-data/<token>/<streamingID> (protocol.md §3.3; /hidden/brokers/response-data/…
 * under mandatory auth, §2.5): a client's answer upload, taken by the relay waiting for it here,
 * or (HA mode) passed on to the server that waits for it, which checks its credentials.
 */
export function createResponseIntake(parts: ServerParts, hops: PeerHops) {
  const { config, logger, egress, metrics, pending, routing } = parts;

  /**
   * Mandatory auth: the upload carries `authorization` whose JWT `azp` is the one the request's
   * tunnel was validated with (snyk-broker's check), so only that client can answer. A refused
   * upload leaves the request waiting for the right one.
   */
  function uploadRefusal(req: IncomingMessage, attempt: RelayAttempt): Failure | undefined {
    if (!config.mandatoryAuth) return undefined;
    const authorization = req.headers.authorization;
    if (!authorization) return FAILURES.AUTH_REQUIRED;
    const expected = attempt.connection.credentials?.brokerAppClientId;
    const azp = jwtAzp(authorization);
    return azp && expected && azp === expected ? undefined : FAILURES.AUTH_INVALID;
  }

  /** Passes the upload on to the server waiting for it; false when none is known (then it is taken here or refused). */
  async function toOwner(req: IncomingMessage, res: ServerResponse, streamingID: string, rawUrl: string): Promise<boolean> {
    if (!routing || req.headers[FORWARDED_HEADER] !== undefined) return false;
    const owner = answerOwner(streamingID, rawUrl, config.serverId);
    const peer = owner !== undefined && !routing.isUnreachable(owner) ? await routing.findServer(owner) : undefined;
    if (!peer) return false;
    try {
      await forwardHttpRequest(egress, req, res, peer.peerUrl, peerHopHeaders(config.serverId, config.internalSecret));
      metrics.tunnelForwards.inc({ kind: 'response-data', outcome: 'forwarded' });
    } catch (err) {
      metrics.tunnelForwards.inc({ kind: 'response-data', outcome: 'unreachable' });
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return true;
      }
      hops.failed(peer, err, 'answer upload');
      req.resume();
      sendFailure(res, FAILURES.PEER_UNREACHABLE, { message: `the broker server waiting for this answer (${peer.serverId}) could not be reached` });
    }
    return true;
  }

  return async function responseData(req: IncomingMessage, res: ServerResponse, path: string, rawUrl: string): Promise<void> {
    const m = RESPONSE_DATA_PATH.exec(path);
    if (!m || req.method !== 'POST') {
      req.resume();
      return sendFailure(res, FAILURES.BAD_REQUEST, { message: `expected POST ${config.mandatoryAuth ? '/hidden/brokers' : ''}/response-data/<token>/<streamingID>` });
    }
    let token: string;
    let streamingID: string;
    try {
      // Both are plain text almost always; decodeURIComponent is dear even with nothing to decode.
      token = (m[1].includes('%') ? decodeURIComponent(m[1]) : m[1]).toLowerCase();
      streamingID = m[2].includes('%') ? decodeURIComponent(m[2]) : m[2];
    } catch {
      req.resume();
      return sendFailure(res, FAILURES.BAD_REQUEST, { message: 'undecodable path' });
    }
    // Waited for here: take it, whatever server_id says (the tunnel may have been served here instead of there).
    let attempt = pending.get(streamingID);
    if (!attempt) {
      if (await toOwner(req, res, streamingID, rawUrl)) return;
      attempt = pending.get(streamingID);
    }
    const refusal = attempt && attempt.token === token ? uploadRefusal(req, attempt) : undefined;
    if (attempt && refusal) {
      metrics.authChecks.inc({ kind: 'response-data', outcome: refusal.reason });
      logger.warn({ streamingID, connection: attempt.connection.id, reason: refusal.reason }, 'answer upload refused: its credentials are not those of the tunnel the request went over');
      req.resume();
      return sendFailure(res, refusal, { message: 'Invalid Broker client credentials.' }, BEARER_CHALLENGE);
    }
    if (attempt && attempt.token === token && config.mandatoryAuth) metrics.authChecks.inc({ kind: 'response-data', outcome: 'accepted' });
    if (!attempt || attempt.token !== token || !attempt.takeAnswer(req, httpReceipt(res))) {
      logger.debug({ streamingID }, 'response-data for an unknown streaming id');
      req.resume();
      sendJson(res, 500, { message: UNKNOWN_STREAM_MESSAGE });
    }
  };
}
