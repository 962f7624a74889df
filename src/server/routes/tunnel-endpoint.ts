import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { describeError } from '../../http/errors.js';
import { forwardHttpRequest, forwardUpgrade } from '../../http/forward.js';
import { answerRawFailure, sendFailure, sendJson } from '../../http/server-helpers.js';
import { FAILURES, type Failure } from '../../protocol/failures.js';
import { admitPeerRequest, logRefusedPeer, peerHopHeaders } from '../peer-auth.js';
import { refuseHandshake, refuseUpgrade, type TunnelAuth } from '../tunnel-auth.js';
import { tunnelTokenOf, type Tunnels } from '../tunnels.js';
import type { ServerParts } from './context.js';
import type { PeerHops } from './peer-hops.js';

/** engine.io's answer for a session this server does not hold: the client starts a new one. */
function unknownSession(res: ServerResponse): void {
  sendJson(res, 400, { code: 1, message: 'Session ID unknown' });
}

/**
 * A websocket upgrade served by this server: a new tunnel is refused while draining and, under
 * mandatory auth, validated here, where it is served (a peer it is piped to validates it itself).
 */
function serveUpgradeHere(parts: Pick<ServerParts, 'lifecycle' | 'tunnels' | 'tunnelAuth' | 'logger'>, req: IncomingMessage, socket: Duplex, head: Buffer, rawUrl: string, refuse: (failure: Failure) => void): void {
  const { lifecycle, tunnels, tunnelAuth, logger } = parts;
  const isHandshake = !/[?&]sid=/.test(rawUrl);
  if (lifecycle.draining && isHandshake) return refuse(FAILURES.SERVER_DRAINING);
  const token = tunnelTokenOf(rawUrl);
  if (!isHandshake || !tunnelAuth || !token) return tunnels.handleUpgrade(req, socket, head);
  admitUpgrade(tunnelAuth, tunnels, req, socket, head, token).catch((err) => {
    logger.error({ error: describeError(err) }, 'tunnel handshake validation failed');
    socket.destroy();
  });
}

/** A websocket handshake of a new tunnel under mandatory auth: validated, then handed to engine.io. */
async function admitUpgrade(tunnelAuth: TunnelAuth, tunnels: Tunnels, req: IncomingMessage, socket: Duplex, head: Buffer, token: string): Promise<void> {
  // Node leaves an upgraded socket without an error listener: a client reset while the
  // validation runs must not crash us (kept afterwards: ws destroys the socket on error too).
  socket.on('error', () => socket.destroy());
  const admission = await tunnelAuth.admit(req, token);
  if (socket.destroyed) return;
  if (!admission.ok) return refuseUpgrade(socket, admission);
  tunnels.handleUpgrade(req, socket, head);
}

/**
 * The tunnel endpoint, /primus/<token>/ (protocol.md §2): engine.io long-polling requests and
 * websocket upgrades, served here or, in HA mode, piped to the server they belong to.
 */
export function createTunnelEndpoint(parts: ServerParts, hops: PeerHops) {
  const { config, logger, egress, metrics, tunnels, lifecycle, passingTunnels, tunnelAuth } = parts;

  /** A polling request (or a handshake) for /primus/<token>/ that passed the router's checks. */
  async function request(req: IncomingMessage, res: ServerResponse, rawUrl: string): Promise<void> {
    const token = tunnelTokenOf(rawUrl);
    if (!token) {
      req.resume();
      return sendFailure(res, FAILURES.BAD_REQUEST, { ok: false, message: 'expected /primus/<token>/' });
    }
    const target = await hops.tunnelPeer(req, rawUrl);
    if (target) {
      try {
        await forwardHttpRequest(egress, req, res, target.peer.peerUrl, peerHopHeaders(config.serverId, config.internalSecret));
        metrics.tunnelForwards.inc({ kind: 'polling', outcome: 'forwarded' });
        return;
      } catch (err) {
        if (res.headersSent || res.destroyed) {
          // The long poll broke off midway (client or peer went away): engine.io-client retries.
          res.destroy();
          return;
        }
        hops.failed(target.peer, err, 'tunnel request');
        metrics.tunnelForwards.inc({ kind: 'polling', outcome: 'unreachable' });
        // A session lives only on its server; a new tunnel is served here instead.
        if (target.session || req.method !== 'GET') {
          req.resume();
          return unknownSession(res);
        }
      }
    }
    const isHandshake = !/[?&]sid=/.test(rawUrl);
    if (isHandshake && lifecycle.draining) {
      req.resume();
      return sendFailure(res, FAILURES.SERVER_DRAINING, { ok: false }, { 'retry-after': '1' });
    }
    // Mandatory auth: a new tunnel is validated here, where it is served (a peer it is piped to validates it itself).
    if (isHandshake && tunnelAuth) {
      const admission = await tunnelAuth.admit(req, token);
      if (!admission.ok) {
        req.resume();
        return refuseHandshake(res, admission);
      }
    }
    return tunnels.handleRequest(req, res);
  }

  async function pipeOrServe(req: IncomingMessage, socket: Duplex, head: Buffer, rawUrl: string, refuse: (failure: Failure | { status: number }) => void): Promise<void> {
    const target = await hops.tunnelPeer(req, rawUrl);
    if (socket.destroyed) return;
    const serveHere = () => serveUpgradeHere(parts, req, socket, head, rawUrl, refuse);
    if (!target) return serveHere();
    // A draining server pipes no new tunnel: it would have to cut it soon; the client retries elsewhere.
    if (lifecycle.draining && !target.session) return refuse(FAILURES.SERVER_DRAINING);
    passingTunnels.add(socket);
    await forwardUpgrade(req, socket, head, target.peer.peerUrl, peerHopHeaders(config.serverId, config.internalSecret), {
      connectTimeoutMs: 3000,
      onConnect: () => metrics.tunnelForwards.inc({ kind: 'websocket', outcome: 'forwarded' }),
      onConnectError: (err) => {
        passingTunnels.delete(socket);
        hops.failed(target.peer, err, 'tunnel upgrade');
        metrics.tunnelForwards.inc({ kind: 'websocket', outcome: 'unreachable' });
        // engine.io's own refusal of a session it does not know (no reason: not a broker failure).
        if (target.session) refuse({ status: 400 });
        else serveHere();
      },
    });
    passingTunnels.delete(socket);
  }

  /** The HTTP server's 'upgrade' event: a websocket tunnel (every other upgrade is refused). */
  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const rawUrl = req.url ?? '/';
    const refuse = (failure: Failure | { status: number }) => answerRawFailure(socket, failure);
    if (!tunnelTokenOf(rawUrl)) return refuse(FAILURES.BAD_REQUEST);
    if (!admitPeerRequest(req, config.internalSecret)) {
      logRefusedPeer(logger, req, 'tunnel upgrade');
      return refuse(FAILURES.INTERNAL_SECRET_REQUIRED);
    }
    pipeOrServe(req, socket, head, rawUrl, refuse).catch((err) => {
      logger.error({ error: describeError(err) }, 'tunnel upgrade failed');
      socket.destroy();
    });
  }

  return { request, upgrade };
}
