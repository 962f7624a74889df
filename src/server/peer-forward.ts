import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import type { Egress } from '../http/egress.js';
import { describeError, neverConnected } from '../http/errors.js';
import { FAILURE_HEADER, HOP_BY_HOP, sendFailure } from '../http/server-helpers.js';
import type { Logger } from '../observability/logger.js';
import type { PeerRoute } from './peer-routing.js';
import { FORWARDED_HEADER, INTERNAL_SECRET_HEADER } from '../http/forward.js';
import { answerHeaders } from './platform-request.js';
import { FAILURES, peerMayRetryElsewhere, RETRY_ELSEWHERE_HEADER } from '../protocol/failures.js';

/** 'unavailable' says why (for the platform's error message when no target could take the request). */
export type ForwardOutcome = { outcome: 'answered' } | { outcome: 'unavailable'; why: string; hedged?: boolean };

/** Hedging of an idempotent forward: while no answer has started, the peer is probed every `afterMs`; a failed probe abandons it. */
export interface ForwardHedge {
  afterMs: number;
  /** false: the peer is hung or unreachable. */
  probe(): Promise<boolean>;
}

const ANSWERED: ForwardOutcome = { outcome: 'answered' };

/**
 * Sends one platform request to a peer server's /broker/ API (marked so the peer relays it
 * over its own tunnels only) and streams the peer's answer back. 'unavailable' means nothing
 * was relayed there (unreachable, or the peer had no usable tunnel) so another target may try.
 */
export async function forwardToPeer(
  peer: PeerRoute,
  req: IncomingMessage,
  res: ServerResponse,
  init: { rawUrl: string; body?: Buffer; requestId: string; selfServerId: string; timeoutMs: number; idempotent: boolean; internalSecret?: string; hedge?: ForwardHedge },
  deps: { egress: Egress; logger: Logger },
): Promise<ForwardOutcome> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || k === 'host' || k === 'content-length' || k === INTERNAL_SECRET_HEADER) continue;
    headers[k] = v;
  }
  headers['snyk-request-id'] = init.requestId;
  headers[FORWARDED_HEADER] = init.selfServerId;
  // The peer refuses a forwarded request without it (when BROKER_INTERNAL_SECRET is set there).
  if (init.internalSecret) headers[INTERNAL_SECRET_HEADER] = init.internalSecret;
  let answer;
  // A hung peer (SIGSTOP, a starved node) holds the request without answering or closing: an
  // idempotent one is abandoned once the peer misses a probe, and goes to the next target. The
  // peer, when it wakes, finds the connection closed and drops its late answer.
  const abandon = new AbortController();
  let hung = false;
  let hedgeTimer: NodeJS.Timeout | undefined;
  let waiting = true;
  const hedge = init.idempotent ? init.hedge : undefined;
  const scheduleProbe = () => {
    if (!hedge) return;
    hedgeTimer = setTimeout(() => {
      void hedge.probe().then((alive) => {
        if (!waiting) return;
        if (alive) return scheduleProbe();
        hung = true;
        abandon.abort();
      });
    }, hedge.afterMs);
    hedgeTimer.unref?.();
  };
  scheduleProbe();
  try {
    // Bounded until the answer starts (the peer answers 504 itself first); the body streams as long as it flows.
    answer = await deps.egress.request(`${peer.peerUrl}${init.rawUrl}`, {
      method: (req.method ?? 'GET') as 'GET',
      headers,
      body: init.body,
      headersTimeout: init.timeoutMs,
      ...(hedge ? { signal: abandon.signal } : {}),
    });
    waiting = false;
    clearTimeout(hedgeTimer);
  } catch (err) {
    waiting = false;
    clearTimeout(hedgeTimer);
    if (hung) {
      deps.logger.info({ requestId: init.requestId, peer: peer.serverId }, 'peer server missed its probe while holding an idempotent request (hung?); sending it to another target (hedge)');
      return { outcome: 'unavailable', why: `server ${peer.serverId}: did not answer its liveness probe`, hedged: true };
    }
    // Never connected: the request never reached the peer, so another target may take it.
    if (neverConnected(err) || init.idempotent) {
      deps.logger.warn({ requestId: init.requestId, peer: peer.serverId, error: describeError(err) }, 'peer server failed before answering; trying another target');
      return { outcome: 'unavailable', why: `server ${peer.serverId}: ${describeError(err)}` };
    }
    // The peer may have relayed it: a non-idempotent request is not sent a second time.
    deps.logger.warn({ requestId: init.requestId, peer: peer.serverId, error: describeError(err) }, 'peer server failed after the request was sent');
    if (!res.headersSent) sendFailure(res, FAILURES.PEER_FAILED, { ok: false, message: 'the peer broker server holding the tunnel failed before answering; the request may have reached the origin, so it was not retried' }, { 'snyk-request-id': init.requestId });
    return ANSWERED;
  }
  const failure = answer.headers[FAILURE_HEADER];
  // The peer relayed nothing (no usable tunnel, draining), or its tunnel dropped and it says the request may go elsewhere.
  if (peerMayRetryElsewhere(answer.statusCode, failure, answer.headers[RETRY_ELSEWHERE_HEADER] === 'true')) {
    await answer.body.dump().catch(() => undefined);
    deps.logger.debug({ requestId: init.requestId, peer: peer.serverId, failure }, 'peer server could not take the request; trying another target');
    return { outcome: 'unavailable', why: `server ${peer.serverId}: ${answer.statusCode} ${String(failure)}` };
  }
  if (res.destroyed) {
    answer.body.destroy();
    return ANSWERED;
  }
  const out = answerHeaders(answer.headers);
  out['x-broker-served-by'] = peer.serverId;
  res.writeHead(answer.statusCode, out);
  await new Promise<void>((resolve) => {
    pipeline(answer.body, res, (err) => {
      if (err) deps.logger.warn({ requestId: init.requestId, peer: peer.serverId, error: describeError(err) }, 'answer from the peer server broke off');
      resolve();
    });
  });
  return ANSWERED;
}
