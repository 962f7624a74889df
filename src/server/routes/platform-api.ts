import type { IncomingMessage, ServerResponse } from 'node:http';
import { FORWARDED_HEADER } from '../../http/forward.js';
import { sendFailure } from '../../http/server-helpers.js';
import { FAILURES } from '../../protocol/failures.js';
import { IDEMPOTENT_METHODS, parseBrokerPath, relayHeaders, requestIdOf } from '../platform-request.js';
import { PlatformRelay, type PlatformRelayInit } from '../relay.js';
import { readPlatformRequest, type PlatformRequest } from './platform-intake.js';
import { forwardInOrder, peerFallback } from './peer-targets.js';
import type { ServerParts } from './context.js';

/** The service channel needs snyk-broker ≥ 4.209.0 (or the unversioned `local` build, or our client). */
function serviceCapable(version: string | undefined, ours: boolean): boolean {
  if (ours || version === 'local') return true;
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version ?? '');
  if (!m) return false;
  const [a, b, c] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return a > 4 || (a === 4 && (b > 209 || (b === 209 && c >= 0)));
}

/**
 * The platform-facing API (protocol.md §3): `/broker/<token>/<path>` relayed over a tunnel of
 * the token, on this server or, in HA mode, on a peer in proportion to their tunnels; and
 * `GET /service/<token>/<command>`, a control command the client answers in an ack.
 */
export function createPlatformRoutes(parts: ServerParts) {
  const { pool, routing, lifecycle, relays, relayDeps } = parts;

  const forget = (relay: PlatformRelay) => relays.delete(relay);

  function startRelay(req: IncomingMessage, res: ServerResponse, init: PlatformRelayInit): Promise<void> {
    const relay = new PlatformRelay(init, req, res, relayDeps, forget);
    relays.add(relay);
    return relay.run();
  }

  /** Over a tunnel of this server; a peer's tunnels are the fallback (never for a request a peer forwarded). */
  function relayHere(req: IncomingMessage, res: ServerResponse, p: PlatformRequest): Promise<void> {
    const forwarded = req.headers[FORWARDED_HEADER] !== undefined;
    const peers = forwarded ? undefined : routing;
    return startRelay(req, res, {
      token: p.token,
      request: { url: p.url, method: p.method, headers: p.headers, ...(p.body ? { body: p.body } : {}), requestId: p.requestId },
      requestId: p.requestId,
      wantsAck: req.headers['x-broker-ws-response'] !== undefined,
      idempotent: IDEMPOTENT_METHODS.has(p.method),
      hasAlternative: forwarded,
      // The local tunnel dropped and no other is left here (a client just died): a peer's tunnels take it.
      fallbackAvailable: peers ? () => peers.peersFor(p.token).length > 0 : undefined,
      tunnelsMoving: peers ? () => peers.tunnelsMoving(p.token) : undefined,
      fallback: peers ? peerFallback(parts, req, res, p, peers) : undefined,
    });
  }

  /** /broker/<token>/<path>: to this server's tunnels or a peer's, by weighted round robin over their tunnels. */
  async function broker(req: IncomingMessage, res: ServerResponse, rawUrl: string): Promise<void> {
    const parsed = parseBrokerPath(rawUrl);
    const requestId = requestIdOf(req.headers);
    if (!parsed) {
      req.resume();
      return sendFailure(res, FAILURES.BAD_REQUEST, { ok: false, message: 'expected /broker/<token>/<path>' }, { 'snyk-request-id': requestId });
    }
    // A request a peer forwarded is relayed here only; otherwise peers holding tunnels of the token share the work.
    const mayForward = routing !== undefined && req.headers[FORWARDED_HEADER] === undefined;
    let peers = mayForward ? routing.peersFor(parsed.token) : [];
    if (mayForward && peers.length === 0) {
      // No peer known for the token, and no tunnel here or this server is going: the cache may
      // predate the token's clients elsewhere. Draining, it asks the dispatcher even when the cache has an entry.
      if (lifecycle.draining) peers = await routing.peersAfterRefresh(parsed.token);
      else if (pool.members(parsed.token).length === 0) peers = await routing.peersForOnMiss(parsed.token);
    }
    if (lifecycle.draining && peers.length === 0) {
      req.resume();
      return sendFailure(res, FAILURES.SERVER_DRAINING, { ok: false, message: 'this broker server is shutting down' }, { 'snyk-request-id': requestId, 'retry-after': '1' });
    }
    const p = await readPlatformRequest(parts, req, res, rawUrl, parsed, requestId);
    if (!p) return;
    if (routing && peers.length > 0) {
      const { draining } = lifecycle;
      const now = Date.now();
      const local = draining ? 0 : pool.members(p.token).filter((c) => pool.isSelectable(c, now)).length;
      const result = await forwardInOrder(parts, req, res, p, routing.order(p.token, local, peers), !draining && local > 0);
      if (result.answered) return;
      if (lifecycle.draining) return sendFailure(res, FAILURES.SERVER_DRAINING, { ok: false, message: `this broker server is shutting down and no peer could take the request (${result.why})` }, { 'snyk-request-id': requestId, 'retry-after': '1' });
    }
    return relayHere(req, res, p);
  }

  /** GET /service/<token>/<command>: a control command answered by the client in an ack (§3.6). */
  function service(req: IncomingMessage, res: ServerResponse, rawUrl: string): Promise<void> | void {
    req.resume();
    const parsed = parseBrokerPath(rawUrl.replace(/^\/service\//, '/broker/'));
    const requestId = requestIdOf(req.headers);
    if (!parsed || req.method !== 'GET') return sendFailure(res, FAILURES.BAD_REQUEST, { ok: false, msg: 'expected GET /service/<token>/<command>' }, { 'snyk-request-id': requestId });
    if (lifecycle.draining) return sendFailure(res, FAILURES.SERVER_DRAINING, { ok: false }, { 'snyk-request-id': requestId, 'retry-after': '1' });
    const headers = relayHeaders(req.headers, requestId, parsed.contextId);
    headers['x-broker-service'] = 'true';
    headers['x-broker-ws-response'] = 'true';
    return startRelay(req, res, {
      token: parsed.token,
      request: { url: parsed.url, method: 'GET', headers, requestId },
      requestId,
      wantsAck: true,
      idempotent: false,
      eventName: 'service',
      accepts: (c) => serviceCapable(c.identity?.version, c.isOurClient),
    });
  }

  return { broker, service };
}
