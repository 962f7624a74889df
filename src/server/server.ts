import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ServerConfig } from '../config/server.js';
import { isSafePath } from '../filters/index.js';
import type { Egress } from '../http/egress.js';
import { describeError } from '../http/errors.js';
import { delay, waitAtMost } from '../http/backoff.js';
import { answerRawFailure, BodyTooLargeError, clientErrorHandler, closeServer, listen, readBody, refuseBody, sendFailure, sendJson } from '../http/server-helpers.js';
import { FAILURES, PARSER_FAILURES, type Failure } from '../protocol/failures.js';
import type { Logger, SecretScrubber } from '../observability/logger.js';
import type { Registry } from '../observability/metrics.js';
import { VERSION } from '../version.js';
import type { Connection } from './connection.js';
import { createDispatcherReporter, noopDispatcherReporter, type DispatcherReporter } from './dispatcher-reporter.js';
import { createServerMetrics, type ServerMetrics } from './metrics.js';
import { IDEMPOTENT_METHODS, parseBrokerPath, relayHeaders, requestIdOf } from './platform-request.js';
import { ConnectionPool } from './pool.js';
import { PendingAnswers, PlatformRelay, UNKNOWN_STREAM_MESSAGE, type FallbackResult } from './relay.js';
import { connectionStatus, connectionsStatus } from './status.js';
import { createTunnels, tunnelTokenOf } from './tunnels.js';
import { createWebhookForwarder } from './webhooks.js';
import { createPeerRouting, type PeerRouting } from './peer-routing.js';
import { forwardToPeer } from './peer-forward.js';
import { createPeerLiveness } from './peer-liveness.js';
import { forwardHttpRequest, forwardUpgrade, FORWARDED_HEADER } from '../http/forward.js';
import { EgressError } from '../http/errors.js';
import { answerOwner, routeTunnelRequest } from './tunnel-routing.js';
import type { PeerRoute, PeerServer } from './peer-routing.js';
import { admitPeerRequest, peerHopHeaders } from './peer-auth.js';
import { createListener } from '../http/listener.js';

export interface ServerDeps {
  logger: Logger;
  egress: Egress;
  registry: Registry;
  scrubber?: SecretScrubber;
  /** Replaces the dispatcher reporter built from config (tests). */
  dispatcher?: DispatcherReporter;
}

export interface BrokerServer {
  /** Binds the port; resolves with the bound port. */
  start(): Promise<number>;
  /** SIGTERM path: drain within the grace period, then close everything. */
  stop(reason?: string): Promise<void>;
  readonly port: number;
  readonly draining: boolean;
  readonly pool: ConnectionPool<Connection>;
  readonly metrics: ServerMetrics;
}

/** The service channel needs snyk-broker ≥ 4.209.0 (or the unversioned `local` build, or our client). */
function serviceCapable(version: string | undefined, ours: boolean): boolean {
  if (ours || version === 'local') return true;
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version ?? '');
  if (!m) return false;
  const [a, b, c] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return a > 4 || (a === 4 && (b > 209 || (b === 209 && c >= 0)));
}

function pathOf(url: string | undefined): string {
  return (url ?? '/').split('?', 1)[0];
}

function hasBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}

export function createServer(config: ServerConfig, deps: ServerDeps): BrokerServer {
  const { logger, egress, registry } = deps;
  const metrics = createServerMetrics(registry);
  const pool = new ConnectionPool<Connection>({ lateAfterMs: config.pingIntervalMs + 5_000 });
  const pending = new PendingAnswers();
  const dispatcher =
    deps.dispatcher ??
    (config.dispatcherUrl
      ? createDispatcherReporter(
          {
            dispatcherUrl: config.dispatcherUrl,
            dispatcherVersion: config.dispatcherVersion,
            serverId: config.serverId,
            healthCheckLink: config.healthCheckLink,
            peerUrl: config.peerUrl,
            publicUrl: config.publicUrl,
            internalSecret: config.internalSecret,
            registerIntervalMs: config.registerIntervalMs,
          },
          {
            egress,
            logger,
            metrics,
            openTunnels: () => pool.all().length,
            reannounce: () => tunnels.reannounce(),
          },
        )
      : noopDispatcherReporter());
  const webhooks = createWebhookForwarder({
    privateRules: config.privateRules,
    egress,
    logger,
    metrics,
    timeoutMs: config.webhookTimeoutMs,
    responseLimitBytes: config.webhookResponseLimitBytes,
  });
  const tunnels = createTunnels(config, { pool, pending, dispatcher, webhooks, metrics, logger, scrubber: deps.scrubber });
  const relays = new Set<PlatformRelay>();
  const forwards = new Set<Promise<unknown>>();
  const relayDeps = { pool, pending, metrics, logger, requestTimeoutMs: config.requestTimeoutMs, retryBufferBytes: config.retryBufferBytes, answerGraceMs: config.answerGraceMs, reconnectWaitMs: config.reconnectWaitMs, serverId: config.serverId };
  /** Tunnels of other servers passing through this one (websocket upgrades piped to the peer). */
  const passingTunnels = new Set<Duplex>();
  const routing: PeerRouting | undefined =
    config.peerRouting && config.dispatcherUrl
      ? createPeerRouting({ dispatcherUrl: config.dispatcherUrl, internalSecret: config.internalSecret, selfServerId: config.serverId, refreshMs: config.routingRefreshMs }, { egress, logger, onServers: drainTunnelsViaStoppingPeers })
      : undefined;
  /** Probes of peers holding a forwarded request too long: a hung one is hedged (see peer-forward.ts). */
  const liveness = routing ? createPeerLiveness({ timeoutMs: config.probeTimeoutMs }, { egress }) : undefined;
  let draining = false;
  let started = false;

  /**
   * A peer that is stopping will soon cut the tunnels it pipes to us: drain them now, so their
   * requests in flight finish and their clients reconnect (through the balancer) before the cut.
   */
  function drainTunnelsViaStoppingPeers(servers: ReadonlyMap<string, PeerServer>): void {
    for (const server of servers.values()) {
      if (server.status !== 'stopping' || server.serverId === config.serverId) continue;
      const count = tunnels.drainVia(server.serverId, 'peer-draining');
      if (count > 0) logger.info({ peer: server.serverId, status: server.status, tunnels: count }, 'peer server is stopping: draining the tunnels that pass through it');
    }
  }
  let boundPort = 0;
  let stopping: Promise<void> | undefined;

  async function handleBroker(req: IncomingMessage, res: ServerResponse, rawUrl: string): Promise<void> {
    const parsed = parseBrokerPath(rawUrl);
    const requestId = requestIdOf(req.headers);
    const idHeader = { 'snyk-request-id': requestId };
    if (!parsed) {
      req.resume();
      return sendFailure(res, FAILURES.BAD_REQUEST, { ok: false, message: 'expected /broker/<token>/<path>' }, idHeader);
    }
    // A request a peer forwarded is relayed here only; otherwise peers holding tunnels of the token share the work.
    const mayForward = routing !== undefined && req.headers[FORWARDED_HEADER] === undefined;
    let peers = mayForward ? routing.peersFor(parsed.token) : [];
    if (mayForward && peers.length === 0 && pool.members(parsed.token).length === 0) peers = await routing.peersForOnMiss(parsed.token);
    if (draining && peers.length === 0) {
      req.resume();
      return sendFailure(res, FAILURES.SERVER_DRAINING, { ok: false, message: 'this broker server is shutting down' }, { ...idHeader, 'retry-after': '1' });
    }
    let body: Buffer | undefined;
    if (hasBody(req)) {
      try {
        body = await readBody(req, config.bodyLimitBytes);
      } catch (err) {
        if (err instanceof BodyTooLargeError) {
          return refuseBody(req, res, FAILURES.BODY_TOO_LARGE, { ok: false, message: `request body exceeds ${config.bodyLimitBytes} bytes` }, idHeader);
        }
        return sendFailure(res, FAILURES.BAD_REQUEST, { ok: false, message: `could not read the request body: ${describeError(err)}` }, idHeader);
      }
      if (body.length === 0) body = undefined;
    }
    const method = (req.method ?? 'GET').toUpperCase();
    const headers = relayHeaders(req.headers, requestId, parsed.contextId);
    const blocked = (reason: string) =>
      sendFailure(res, FAILURES.FILTER_BLOCKED, { code: FAILURES.FILTER_BLOCKED.code, message: 'blocked', reason, url: parsed.url }, idHeader);
    if (!isSafePath(parsed.url)) return blocked('Request path is not normalized (path traversal), blocking HTTP request');
    if (config.publicRules) {
      const result = config.publicRules.match({ method, url: parsed.url, headers, body });
      if (!result.allowed) {
        logger.info({ requestId, method, path: parsed.url.split('?')[0], reason: result.reason }, 'platform request blocked by the public rules');
        return blocked(result.reason);
      }
    }
    if (body) metrics.bytes.inc({ direction: 'request' }, body.length);
    /** Tries the peers in `targets` until one answers ('local' entries stop the walk when `stopAtLocal`); why each could not. */
    const forwardInOrder = async (targets: Array<'local' | PeerRoute>, stopAtLocal: boolean): Promise<FallbackResult> => {
      const why: string[] = [];
      // A peer that just missed a probe (hung?) goes last: this server and the others first.
      const now = Date.now();
      const suspect = (t: 'local' | PeerRoute) => t !== 'local' && liveness !== undefined && liveness.isSuspect(t.serverId, now);
      const ordered = [...targets.filter((t) => !suspect(t)), ...targets.filter(suspect)];
      for (const target of ordered) {
        if (target === 'local') {
          if (stopAtLocal) break;
          continue;
        }
        const hedge = liveness ? { afterMs: config.probeDelayMs, probe: () => liveness.probe(target) } : undefined;
        const forwarding = forwardToPeer(target, req, res, { rawUrl, body, requestId, selfServerId: config.serverId, timeoutMs: config.requestTimeoutMs + 10_000, idempotent: IDEMPOTENT_METHODS.has(method), internalSecret: config.internalSecret, hedge }, { egress, logger });
        forwards.add(forwarding);
        const result = await forwarding.finally(() => forwards.delete(forwarding));
        metrics.peerForwards.inc({ outcome: result.outcome });
        if (result.outcome === 'answered') return { answered: true };
        if (result.hedged) metrics.relayHedges.inc({ target: 'peer' });
        why.push(result.why);
      }
      return { answered: false, why: why.length ? `peers tried: ${why.join('; ')}` : 'no peer holds a tunnel of this token' };
    };
    if (routing && peers.length > 0) {
      const now = Date.now();
      const local = draining ? 0 : pool.members(parsed.token).filter((c) => pool.isSelectable(c, now)).length;
      const result = await forwardInOrder(routing.order(parsed.token, local, peers), !draining && local > 0);
      if (result.answered) return;
      if (draining) return sendFailure(res, FAILURES.SERVER_DRAINING, { ok: false, message: `this broker server is shutting down and no peer could take the request (${result.why})` }, { ...idHeader, 'retry-after': '1' });
    }
    const forwarded = req.headers[FORWARDED_HEADER] !== undefined;
    await startRelay(req, res, {
      token: parsed.token,
      request: { url: parsed.url, method, headers, ...(body ? { body } : {}), requestId },
      requestId,
      wantsAck: req.headers['x-broker-ws-response'] !== undefined,
      idempotent: IDEMPOTENT_METHODS.has(method),
      hasAlternative: forwarded,
      // The local tunnel dropped and no other is left here (a client just died): a peer's tunnels take it.
      fallbackAvailable: routing && !forwarded ? () => routing.peersFor(parsed.token).length > 0 : undefined,
      tunnelsMoving: routing && !forwarded ? () => routing.tunnelsMoving(parsed.token) : undefined,
      fallback:
        routing && !forwarded
          ? async () => {
              const known = routing.peersFor(parsed.token);
              const first = known.length ? await forwardInOrder(routing.order(parsed.token, 0, known), false) : undefined;
              if (first?.answered) return first;
              // The cache may be older than the peers' clients (one just connected elsewhere): look again before giving up.
              const fresh = (await routing.peersAfterRefresh(parsed.token)).filter((p) => !known.some((k) => k.serverId === p.serverId));
              if (fresh.length === 0 && first) return first;
              const second = await forwardInOrder(routing.order(parsed.token, 0, fresh), false);
              if (second.answered || !first) return second;
              return { answered: false, why: `${first.why}; after a routing refresh: ${second.why}` };
            }
          : undefined,
    });
  }

  /** GET /service/<token>/<command>: a control command answered by the client in an ack (§3.6). */
  function handleService(req: IncomingMessage, res: ServerResponse, rawUrl: string): Promise<void> | void {
    req.resume();
    const parsed = parseBrokerPath(rawUrl.replace(/^\/service\//, '/broker/'));
    const requestId = requestIdOf(req.headers);
    if (!parsed || req.method !== 'GET') return sendFailure(res, FAILURES.BAD_REQUEST, { ok: false, msg: 'expected GET /service/<token>/<command>' }, { 'snyk-request-id': requestId });
    if (draining) return sendFailure(res, FAILURES.SERVER_DRAINING, { ok: false }, { 'snyk-request-id': requestId, 'retry-after': '1' });
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

  /**
   * The peer a /primus/ request must go to, or undefined to serve it here: a session's requests
   * go to the server named in its sid; a new tunnel goes to its `server_id` when that server is
   * live and reachable, else it is served here (a tunnel on the wrong server beats no tunnel).
   */
  async function tunnelPeer(req: IncomingMessage, rawUrl: string): Promise<{ peer: PeerServer; session: boolean } | undefined> {
    if (!routing) return undefined;
    const route = routeTunnelRequest(rawUrl, req.headers[FORWARDED_HEADER], config.serverId);
    if (route.kind === 'local' || routing.isUnreachable(route.serverId)) return undefined;
    const peer = await routing.findServer(route.serverId);
    if (!peer) {
      logger.debug({ serverId: route.serverId, route: route.kind }, 'tunnel names a server the dispatcher does not list; serving it here');
      return undefined;
    }
    // A stopping server refuses new tunnels; its sessions still finish there.
    if (route.kind === 'allocated' && peer.status !== 'live') return undefined;
    return { peer, session: route.kind === 'session' };
  }

  function peerFailed(peer: PeerServer, err: unknown, what: string): void {
    if (!(err instanceof EgressError) || err.code !== 'DOWNSTREAM_ERROR') routing?.markUnreachable(peer.serverId);
    logger.warn({ peer: peer.serverId, error: describeError(err) }, `${what}: peer server unreachable`);
  }

  /** engine.io's answer for a session this server does not hold: the client starts a new one. */
  function unknownSession(res: ServerResponse): void {
    sendJson(res, 400, { code: 1, message: 'Session ID unknown' });
  }

  async function handleTunnelRequest(req: IncomingMessage, res: ServerResponse, rawUrl: string): Promise<void> {
    const target = await tunnelPeer(req, rawUrl);
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
        peerFailed(target.peer, err, 'tunnel request');
        metrics.tunnelForwards.inc({ kind: 'polling', outcome: 'unreachable' });
        // A session lives only on its server; a new tunnel is served here instead.
        if (target.session || req.method !== 'GET') {
          req.resume();
          return unknownSession(res);
        }
      }
    }
    const isHandshake = !/[?&]sid=/.test(rawUrl);
    if (isHandshake && draining) {
      req.resume();
      return sendFailure(res, FAILURES.SERVER_DRAINING, { ok: false }, { 'retry-after': '1' });
    }
    return tunnels.handleRequest(req, res);
  }

  async function handleTunnelUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, rawUrl: string, refuse: (failure: Failure | { status: number }) => void): Promise<void> {
    const target = await tunnelPeer(req, rawUrl);
    if (socket.destroyed) return;
    const serveHere = () => {
      if (draining && !/[?&]sid=/.test(rawUrl)) return refuse(FAILURES.SERVER_DRAINING);
      tunnels.handleUpgrade(req, socket, head);
    };
    if (!target) return serveHere();
    // A draining server pipes no new tunnel: it would have to cut it soon; the client retries elsewhere.
    if (draining && !target.session) return refuse(FAILURES.SERVER_DRAINING);
    passingTunnels.add(socket);
    await forwardUpgrade(req, socket, head, target.peer.peerUrl, peerHopHeaders(config.serverId, config.internalSecret), {
      connectTimeoutMs: 3000,
      onConnect: () => metrics.tunnelForwards.inc({ kind: 'websocket', outcome: 'forwarded' }),
      onConnectError: (err) => {
        passingTunnels.delete(socket);
        peerFailed(target.peer, err, 'tunnel upgrade');
        metrics.tunnelForwards.inc({ kind: 'websocket', outcome: 'unreachable' });
        // engine.io's own refusal of a session it does not know (no reason: not a broker failure).
        if (target.session) refuse({ status: 400 });
        else serveHere();
      },
    });
    passingTunnels.delete(socket);
  }

  async function startRelay(req: IncomingMessage, res: ServerResponse, init: ConstructorParameters<typeof PlatformRelay>[0]): Promise<void> {
    const relay = new PlatformRelay(init, req, res, relayDeps);
    relays.add(relay);
    void relay.done.then(() => relays.delete(relay));
    await relay.run();
  }

  async function handleResponseData(req: IncomingMessage, res: ServerResponse, path: string, rawUrl: string): Promise<void> {
    const m = /^\/response-data\/([^/]+)\/([^/]+)\/?$/.exec(path);
    if (!m || req.method !== 'POST') {
      req.resume();
      return sendFailure(res, FAILURES.BAD_REQUEST, { message: 'expected POST /response-data/<token>/<streamingID>' });
    }
    let token: string;
    let streamingID: string;
    try {
      token = decodeURIComponent(m[1]).toLowerCase();
      streamingID = decodeURIComponent(m[2]);
    } catch {
      req.resume();
      return sendFailure(res, FAILURES.BAD_REQUEST, { message: 'undecodable path' });
    }
    // Waited for here: take it, whatever server_id says (the tunnel may have been served here instead of there).
    if (!pending.get(streamingID) && routing && req.headers[FORWARDED_HEADER] === undefined) {
      const owner = answerOwner(streamingID, rawUrl, config.serverId);
      const peer = owner !== undefined && !routing.isUnreachable(owner) ? await routing.findServer(owner) : undefined;
      if (peer) {
        try {
          await forwardHttpRequest(egress, req, res, peer.peerUrl, peerHopHeaders(config.serverId, config.internalSecret));
          metrics.tunnelForwards.inc({ kind: 'response-data', outcome: 'forwarded' });
          return;
        } catch (err) {
          metrics.tunnelForwards.inc({ kind: 'response-data', outcome: 'unreachable' });
          if (res.headersSent || res.destroyed) {
            res.destroy();
            return;
          }
          peerFailed(peer, err, 'answer upload');
          req.resume();
          return sendFailure(res, FAILURES.PEER_UNREACHABLE, { message: `the broker server waiting for this answer (${peer.serverId}) could not be reached` });
        }
      }
    }
    const attempt = pending.get(streamingID);
    if (!attempt || attempt.token !== token || !attempt.takeAnswer(req, res)) {
      logger.debug({ streamingID }, 'response-data for an unknown streaming id');
      req.resume();
      sendJson(res, 500, { message: UNKNOWN_STREAM_MESSAGE });
    }
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    const path = pathOf(rawUrl);
    // Draining: each answer closes its keep-alive connection, so no caller (a peer forwarding a
    // POST) writes its next request into a socket we are about to close.
    if (draining) res.setHeader('connection', 'close');
    if (!admitPeerRequest(req, config.internalSecret)) {
      refusedPeer(req, 'request');
      req.resume();
      return sendFailure(res, FAILURES.INTERNAL_SECRET_REQUIRED, { ok: false, message: 'a request forwarded by a peer server needs a valid x-broker-internal-secret' });
    }
    if (path.startsWith('/primus/')) {
      if (!tunnelTokenOf(rawUrl)) {
        req.resume();
        return sendFailure(res, FAILURES.BAD_REQUEST, { ok: false, message: 'expected /primus/<token>/' });
      }
      return handleTunnelRequest(req, res, rawUrl);
    }
    if (path.startsWith('/broker/')) return handleBroker(req, res, rawUrl);
    if (path.startsWith('/response-data/')) return handleResponseData(req, res, path, rawUrl);
    if (path.startsWith('/service/')) return handleService(req, res, rawUrl);
    req.resume();
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendFailure(res, FAILURES.NOT_FOUND, { ok: false });
    if (path === '/' || path === '/healthcheck') return sendJson(res, 200, { ok: true, version: VERSION });
    if (path === '/livez') return sendJson(res, 200, { ok: true });
    if (path === '/readyz') {
      return started && !draining ? sendJson(res, 200, { ok: true }) : sendJson(res, 503, { ok: false, reason: draining ? 'draining' : 'starting' });
    }
    if (path === '/metrics') {
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(text);
      return;
    }
    if (path === '/connections-status') return sendJson(res, 200, connectionsStatus(pool));
    const status = /^\/connection-status\/([^/]+)\/?$/.exec(path);
    if (status) {
      let token = '';
      try {
        token = decodeURIComponent(status[1]).toLowerCase();
      } catch {
        // falls through to 404
      }
      const body = connectionStatus(pool, token);
      return body ? sendJson(res, 200, body) : sendFailure(res, FAILURES.NO_CONNECTION, { ok: false });
    }
    return sendFailure(res, FAILURES.NOT_FOUND, { ok: false });
  }

  /** Logged without the path (it holds the token) and without any header value but the claimed peer id. */
  function refusedPeer(req: IncomingMessage, what: string): void {
    const by = req.headers[FORWARDED_HEADER];
    logger.warn({ method: req.method, route: pathOf(req.url).split('/')[1] ?? '', forwardedBy: String(by).slice(0, 128), remote: req.socket.remoteAddress }, `${what} claims to come from a peer server without the valid internal secret (BROKER_INTERNAL_SECRET): refused with 401`);
  }

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const rawUrl = req.url ?? '/';
    const refuse = (failure: Failure | { status: number }) => answerRawFailure(socket, failure);
    if (!tunnelTokenOf(rawUrl)) return refuse(FAILURES.BAD_REQUEST);
    if (!admitPeerRequest(req, config.internalSecret)) {
      refusedPeer(req, 'tunnel upgrade');
      return refuse(FAILURES.INTERNAL_SECRET_REQUIRED);
    }
    handleTunnelUpgrade(req, socket, head, rawUrl, refuse).catch((err) => {
      logger.error({ error: describeError(err) }, 'tunnel upgrade failed');
      socket.destroy();
    });
  }

  const http: Server = createListener(config.tls, (req, res) => {
    onRequest(req, res).catch((err) => {
      logger.error({ error: describeError(err) }, 'request handler failed');
      if (!res.headersSent) sendFailure(res, FAILURES.INTERNAL_ERROR, { ok: false });
      else res.destroy();
    });
  });
  // Answer uploads can stream for a long time; only the headers are bounded.
  http.requestTimeout = 0;
  http.headersTimeout = config.headersTimeoutMs;
  // Node enforces headersTimeout on this check interval (30 s by default, read at listen).
  (http as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.min(30_000, Math.max(100, Math.floor(config.headersTimeoutMs / 4)));
  http.keepAliveTimeout = 65_000;
  http.on('upgrade', onUpgrade);
  // 431 oversized head, 408 headers too slow, 400 malformed or ambiguous (smuggling), each with x-broker-failure.
  http.on('clientError', clientErrorHandler(PARSER_FAILURES));

  async function drainAndClose(reason: string): Promise<void> {
    const deadline = Date.now() + config.drainGraceMs;
    draining = true;
    logger.info({ reason, inFlight: relays.size, connections: tunnels.connections().size, graceMs: config.drainGraceMs }, 'draining: refusing new tunnels and requests');
    const stoppingReport = dispatcher.serverStopping().catch(() => undefined);
    tunnels.drainAll('server-draining');
    // Forwards started during the drain are awaited too (a loop: new ones may begin while we wait).
    while ((relays.size > 0 || forwards.size > 0) && Date.now() < deadline) {
      await waitAtMost(Promise.all([...[...relays].map((r) => r.done), ...forwards]), deadline - Date.now());
    }
    if (relays.size > 0) logger.warn({ unfinished: relays.size }, 'drain grace period over; cutting unfinished relays');
    // Peers learn we are stopping at their next routing refresh; until then they may still forward
    // to us. Stay reachable (answering 503 server-draining, which they treat as "not relayed") for
    // one refresh, so a forwarded POST never meets a closing socket.
    if (routing) {
      await delay(Math.max(0, Math.min(config.routingRefreshMs + 500, deadline - Date.now())));
      while (forwards.size > 0 && Date.now() < deadline) await waitAtMost(Promise.all([...forwards]), deadline - Date.now());
    }
    await waitAtMost(stoppingReport, Math.max(1000, deadline - Date.now()));
    await tunnels.close(Math.min(1000, Math.max(100, deadline - Date.now())));
    // Tunnels of peers that pass through here: their servers saw us stopping (routing refresh)
    // and send their clients away once idle; wait for that, then cut whatever is left.
    while (passingTunnels.size > 0 && Date.now() < deadline) await delay(Math.min(100, deadline - Date.now()));
    if (passingTunnels.size > 0) logger.warn({ passing: passingTunnels.size }, 'drain grace period over; cutting tunnels of peers that pass through here');
    for (const socket of passingTunnels) socket.destroy();
    // Stop accepting first and let requests already on a connection finish (while draining they
    // are answered at once), so no caller sees a reset; whatever still lingers is then cut.
    await waitAtMost(closeServer(http), 2000);
    http.closeAllConnections?.();
    routing?.stop();
    await dispatcher.close(1000);
    await egress.close().catch(() => undefined);
    logger.info({ reason }, 'broker server stopped');
  }

  return {
    async start() {
      dispatcher.serverStarting();
      boundPort = await listen(http, config.port, config.host);
      // Ready once the first routing lookup is done (or failed): before it, a server holding no
      // tunnel of a token would answer 404 for clients that are connected to its peers.
      if (routing) void routing.start().finally(() => (started = true));
      else started = true;
      logger.info({ port: boundPort, serverId: config.serverId, accept: config.acceptPath ?? null, dispatcher: Boolean(config.dispatcherUrl), tls: config.tls !== undefined, version: VERSION }, 'broker server listening');
      return boundPort;
    },
    stop(reason = 'stop') {
      stopping ??= drainAndClose(reason);
      return stopping;
    },
    get port() {
      return boundPort;
    },
    get draining() {
      return draining;
    },
    pool,
    metrics,
  };
}
