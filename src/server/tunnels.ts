import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Server as EngineServer, type Socket as EngineSocket } from 'engine.io';
import type { Logger, SecretScrubber } from '../observability/logger.js';
import { CLIENT_INSTANCE_METADATA, decodeTunnelAnswer, encodeServerClose, hashToken, maskToken, parseClientInstance, tunnelAnswerStreamingID } from '../protocol/index.js';
import { describeError } from '../http/errors.js';
import { waitAtMost } from '../http/backoff.js';
import { refuseBody } from '../http/server-helpers.js';
import { FAILURES } from '../protocol/failures.js';
import { FORWARDED_HEADER } from '../http/forward.js';
import { createWriteBatcher, socketUnderWebSocket, type Corkable } from '../http/write-batch.js';
import { Connection, type ConnectionHooks, type TunnelTransport } from './connection.js';
import type { ConnectionPool } from './pool.js';
import type { DispatcherReporter } from './dispatcher-reporter.js';
import type { ServerMetrics } from './metrics.js';
import type { WebhookForwarder } from './webhooks.js';
import { checkClientVersion } from './version-gate.js';
import { createSessionId } from './tunnel-routing.js';
import type { PendingAnswers } from './relay.js';

export interface TunnelsConfig {
  pingIntervalMs: number;
  pingTimeoutMs: number;
  maxFrameBytes: number;
  handshakeTimeoutMs: number;
  /** A busy tunnel silent this long is probed (an extra ping). */
  probeDelayMs: number;
  /** A probe unanswered this long: the tunnel is unresponsive (no new requests, idempotent ones on it hedged). */
  probeTimeoutMs: number;
  minimalSupportedVersion: string;
  minimalRecommendedVersion: string;
  /** When set, engine.io session ids name this server (see tunnel-routing.ts). */
  serverId?: string;
}

export interface TunnelsDeps {
  pool: ConnectionPool<Connection>;
  /** Requests waiting for an answer, for answers that come over the tunnel. */
  pending: PendingAnswers;
  dispatcher: DispatcherReporter;
  webhooks: WebhookForwarder;
  metrics: ServerMetrics;
  logger: Logger;
  scrubber?: SecretScrubber;
}

/** `/primus/<token>/` (the trailing slash is engine.io-client's) → lowercase token. */
export function tunnelTokenOf(rawUrl: string | undefined): string | undefined {
  const path = (rawUrl ?? '').split('?', 1)[0];
  const m = /^\/primus\/([^/]+)\/?$/.exec(path);
  if (!m) return undefined;
  try {
    const token = decodeURIComponent(m[1]).toLowerCase();
    return token.length > 0 && token.length <= 256 ? token : undefined;
  } catch {
    return undefined;
  }
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** engine.io's websocket transport keeps the `ws` socket, which keeps the net socket. */
export function netSocketOf(socket: EngineSocket): Corkable | undefined {
  const transport = socket.transport as unknown as { name?: string; socket?: unknown };
  return transport.name === 'websocket' ? socketUnderWebSocket(transport.socket) : undefined;
}

function engineTransport(socket: EngineSocket): TunnelTransport {
  return {
    send(text, onFlushed) {
      socket.send(text, {}, onFlushed ? () => onFlushed() : undefined);
    },
    close(code, reason) {
      const transport = socket.transport as unknown as { name?: string; socket?: { close(code?: number, reason?: string): void } };
      if (code !== undefined && transport.name === 'websocket' && transport.socket) {
        try {
          // A close code tells our client why (4001 server-draining); engine.io would send a plain 1000/1005.
          transport.socket.close(code, reason);
          return;
        } catch {
          // fall back to engine.io's close
        }
      }
      socket.close();
    },
    ping() {
      // engine.io v4 only (in v3 the client pings); a live client answers with a pong packet.
      const s = socket as unknown as { protocol?: number; readyState?: string; sendPacket?: (type: string) => void };
      if (s.protocol !== 4 || s.readyState !== 'open' || typeof s.sendPacket !== 'function') return false;
      s.sendPacket('ping');
      return true;
    },
  };
}

/**
 * Accepts tunnels: engine.io v4 (polling + upgrade, direct websocket, EIO3 tolerated) under
 * /primus/<token>/, Primus framing on top, one Connection per tunnel.
 */
export function createTunnels(config: TunnelsConfig, deps: TunnelsDeps) {
  const { pool, pending, dispatcher, webhooks, metrics, logger } = deps;
  const batchWrites = createWriteBatcher();
  const engine = new EngineServer({
    pingInterval: config.pingIntervalMs,
    pingTimeout: config.pingTimeoutMs,
    maxHttpBufferSize: config.maxFrameBytes,
    allowEIO3: true,
    transports: ['polling', 'websocket'],
    perMessageDeflate: false,
    httpCompression: false,
    cookie: false,
  });
  if (config.serverId !== undefined) {
    const serverId = config.serverId;
    // Polling requests and the upgrade of a session may land on any server behind a Service: the sid says whose it is.
    (engine as unknown as { generateId: () => string }).generateId = () => createSessionId(serverId);
  }
  const live = new Set<Connection>();
  /** Per-process prefix of the per-tunnel instance labels (a restarted server must not reuse them). */
  const tunnelTag = `t${randomBytes(4).toString('hex')}`;
  let drainReason: string | undefined;
  /** Tunnels a peer server forwarded here (x-broker-forwarded-by): tunnel → that peer's id. */
  const viaPeer = new Map<Connection, string>();
  /** Silent this long → the tunnel is dropped (Primus' server timeout is 35 s with 25 s pings). */
  const silenceLimitMs = config.pingIntervalMs + 10_000;
  /** A tunnel with relays in flight and silent this long is probed; unanswered this long, it is passed over. */
  const probeAfterMs = config.probeDelayMs;
  const probeTimeoutMs = config.probeTimeoutMs;

  const updateGauge = (token: string) => {
    const ready = pool.members(token).filter((c) => c.state === 'ready').length;
    // A token without connections drops its series, so label cardinality follows live tokens.
    if (ready === 0) metrics.connections.remove({ token_hash: hashToken(token) });
    else metrics.connections.set({ token_hash: hashToken(token) }, ready);
  };

  const hooks: ConnectionHooks = {
    onIdentify(conn, payload) {
      if (conn.state !== 'connecting') {
        logger.debug({ connection: conn.id }, 'repeated identify ignored');
        return;
      }
      let token: string | undefined;
      let metadata: Record<string, unknown> = {};
      if (typeof payload === 'string') {
        token = payload.toLowerCase();
        metadata = { version: 'pre-4.27' };
      } else if (payload && typeof payload === 'object') {
        const p = payload as { token?: unknown; metadata?: unknown };
        token = typeof p.token === 'string' ? p.token.toLowerCase() : undefined;
        if (p.metadata && typeof p.metadata === 'object' && !Array.isArray(p.metadata)) metadata = p.metadata as Record<string, unknown>;
      }
      if (!token) {
        logger.warn({ connection: conn.id }, 'client identified without a token; closing the tunnel');
        conn.transport.close();
        return;
      }
      deps.scrubber?.add(token);
      if (token !== conn.pathToken) {
        logger.warn({ connection: conn.id, maskedToken: maskToken(conn.pathToken) }, 'identify token differs from the tunnel path token; closing the tunnel');
        conn.transport.close();
        return;
      }
      const version = typeof metadata.version === 'string' ? metadata.version : 'unknown';
      const capabilities = Array.isArray(metadata.capabilities) ? metadata.capabilities.filter((c): c is string => typeof c === 'string') : [];
      const verdict = checkClientVersion(version, capabilities, config.minimalSupportedVersion, config.minimalRecommendedVersion);
      if (verdict.kind === 'refuse') {
        logger.warn({ connection: conn.id, maskedToken: maskToken(token), version }, 'client version refused');
        try {
          conn.sendEvent('notification', [{ level: 'error', message: verdict.message }]);
        } catch {
          // closing anyway
        }
        // An outdated real client must not come back: primus::server::close stops its reconnects.
        conn.transport.send(encodeServerClose(), () => conn.transport.close());
        conn.drain();
        return;
      }
      if (verdict.kind === 'warn') conn.sendEvent('notification', [{ level: 'warning', message: verdict.message }]);
      if (verdict.kind === 'unreadable') logger.warn({ connection: conn.id, version }, 'client version is not a semantic version; letting it in');
      const { filters, ...rest } = metadata;
      conn.identity = {
        token,
        clientId: typeof metadata.clientId === 'string' && metadata.clientId ? metadata.clientId : (conn.headerClientId ?? `conn${conn.seq}`),
        // A client without an instance id (Snyk's) is told apart per tunnel: its primary and
        // secondary are then two records at the dispatcher, which counts them all the same.
        instance: parseClientInstance(metadata[CLIENT_INSTANCE_METADATA]) ?? `${tunnelTag}.${conn.seq}`,
        role: typeof metadata.role === 'string' && metadata.role ? metadata.role : (conn.headerRole ?? 'primary'),
        version,
        capabilities,
        metadata: rest,
        filters,
      };
      conn.state = 'identified';
      pool.add(token, conn);
      conn.state = 'ready';
      updateGauge(token);
      dispatcher.clientConnected(token, conn.identity.clientId, version, conn.identity.role, conn.identity.instance);
      if (drainReason !== undefined) {
        // Handshook just before the drain began: send it on its way like the others.
        conn.drain();
        conn.sendAwayWhenIdle(drainReason);
      }
      logger.info(
        { connection: conn.id, maskedToken: maskToken(token), hashedToken: hashToken(token), version, capabilities, connections: pool.members(token).length },
        'client connection identified',
      );
    },
    onEvent(conn, name, args, id) {
      if (name === 'request' && id !== undefined) {
        const reply = conn.channel.replier(id);
        if (!conn.identity) {
          reply({ status: 401, body: JSON.stringify({ ok: false, message: 'identify first' }) });
          return;
        }
        conn.pendingWebhooks++;
        webhooks
          .forward(conn.identity.token, args[0])
          .then((answer) => reply(answer))
          .catch((err) => reply({ status: 500, body: JSON.stringify({ ok: false, message: describeError(err) }) }))
          .finally(() => {
            conn.pendingWebhooks--;
            conn.maybeFinishDrain();
          });
        return;
      }
      if (name === 'terminate') {
        const wasReady = conn.state === 'ready';
        conn.terminating = true;
        conn.drain();
        if (wasReady && conn.identity) updateGauge(conn.identity.token);
        logger.info({ connection: conn.id }, 'client is terminating');
        return;
      }
      if (name === 'client-event') {
        const type = (args[0] as { event?: { type?: unknown } } | undefined)?.event?.type;
        if (type === 'client-shutdown') {
          // The client is stopping: no new relays here; what it holds finishes (answers may still come by POST after the tunnel closes).
          const wasReady = conn.state === 'ready';
          conn.drain();
          if (wasReady && conn.identity) updateGauge(conn.identity.token);
          logger.info({ connection: conn.id, inFlight: conn.inFlight }, 'client is shutting down; no new requests go to this connection');
          return;
        }
        logger.debug({ connection: conn.id, event: type }, 'client event');
        return;
      }
      logger.debug({ connection: conn.id, event: name }, 'unhandled tunnel event ignored');
    },
    onPing(conn, timestamp) {
      if (!conn.identity || conn.terminating) return;
      const sent = Number(timestamp);
      const latency = Number.isFinite(sent) ? Date.now() - sent : 0;
      dispatcher.clientPinged(conn.identity.token, conn.identity.clientId, conn.identity.version, latency, conn.identity.role, conn.identity.instance);
    },
    onBadFrame(conn, err) {
      metrics.badFrames.inc();
      logger.warn({ connection: conn.id, error: (err).message }, 'undecodable tunnel message ignored');
    },
    onAnswer(conn, frame) {
      let answer;
      try {
        answer = decodeTunnelAnswer(frame);
      } catch (err) {
        metrics.badFrames.inc();
        logger.warn({ connection: conn.id, error: (err as Error).message }, 'invalid answer over the tunnel');
        const id = tunnelAnswerStreamingID(frame);
        const attempt = id === undefined ? undefined : pending.get(id);
        if (attempt?.connection === conn) attempt.failAnswer(`the broker client sent an invalid answer: ${(err as Error).message}`);
        return;
      }
      // Only the connection the request went out on may answer it over the tunnel.
      const attempt = pending.get(answer.streamingID);
      if (attempt?.connection !== conn || !attempt.takeWholeAnswer(answer.head, answer.body)) {
        // The POST path's equivalent is the client's "failed to deliver" warning; here only the server knows.
        logger.info({ connection: conn.id, streamingID: answer.streamingID }, 'answer over the tunnel for a request no longer waiting here (timed out, or the platform left); dropped');
      }
    },
    onClosed(conn, reason) {
      live.delete(conn);
      const identity = conn.identity;
      if (!identity) {
        logger.debug({ connection: conn.id, reason }, 'tunnel closed before identifying');
        return;
      }
      const remaining = pool.remove(identity.token, conn);
      updateGauge(identity.token);
      // Per-connection series go with their connection (unless a twin with the same id is live).
      if (![...live].some((c) => c.id === conn.id)) metrics.relayed.remove({ connection: conn.id });
      dispatcher.clientDisconnected(identity.token, identity.clientId, identity.role, identity.instance);
      logger.info({ connection: conn.id, maskedToken: maskToken(identity.token), reason, remaining }, 'client connection closed');
    },
  };

  engine.on('connection', (socket: EngineSocket) => {
    const req = socket.request;
    const token = tunnelTokenOf(req.url);
    if (!token) {
      socket.close();
      return;
    }
    // engine.io queues packets while a write is out and flushes them together later: cork at
    // every flush (not at send) so each batch, queued or not, leaves in one writev.
    socket.on('flush', () => batchWrites(netSocketOf(socket)));
    const conn = new Connection(engineTransport(socket), token, headerOf(req, 'x-snyk-broker-client-id'), headerOf(req, 'x-snyk-broker-client-role'), hooks, config.maxFrameBytes);
    live.add(conn);
    const forwardedBy = headerOf(req, FORWARDED_HEADER);
    if (forwardedBy !== undefined) {
      viaPeer.set(conn, forwardedBy);
      void conn.whenClosed.then(() => viaPeer.delete(conn));
    }
    socket.on('packet', () => conn.touch());
    socket.on('message', (data: unknown) => (typeof data === 'string' ? conn.receive(data) : conn.receiveBinary(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer))));
    socket.on('close', (reason: string, description?: unknown) => {
      const detail = description ? describeError(description) : '';
      if (/max payload size exceeded/i.test(detail)) {
        // ws refuses the frame from its header (nothing buffered) and closes with 1009.
        logger.warn({ connection: conn.id, maskedToken: maskToken(conn.pathToken), limitBytes: config.maxFrameBytes }, 'tunnel message larger than SOCKET_MAX_RESPONSE_LENGTH; tunnel closed');
      }
      conn.closed(detail ? `${reason}: ${detail}` : reason);
    });
    socket.on('error', (err: Error) => logger.debug({ connection: conn.id, error: err.message }, 'tunnel error'));
    conn.open();
  });
  engine.on('connection_error', (e: { code: number; message: string }) => {
    logger.debug({ code: e.code, message: e.message }, 'tunnel handshake refused');
  });

  // Often enough that a hang is noticed within about probe delay + probe timeout.
  const sweepMs = Math.min(1000, Math.max(50, Math.floor(Math.min(config.pingIntervalMs / 5, config.probeDelayMs / 3, config.probeTimeoutMs / 3))));
  let lastSweep = Date.now();
  const sweeper = setInterval(() => {
    const now = Date.now();
    // A sweep this late means this process did not run for a while: no tunnel is judged on that time.
    const stalled = now - lastSweep - sweepMs;
    lastSweep = now;
    if (stalled > sweepMs) for (const conn of live) conn.postponeProbe(stalled);
    for (const conn of live) {
      if (conn.state === 'connecting' && now - conn.openedAt > config.handshakeTimeoutMs) {
        logger.warn({ connection: conn.id }, 'tunnel did not identify in time; closing');
        conn.transport.close();
      } else if (conn.silentFor(now) > silenceLimitMs) {
        logger.warn({ connection: conn.id, silentMs: conn.silentFor(now) }, 'tunnel silent for too long; closing');
        conn.transport.close();
        // If the transport never reports back, still take it out of the pool.
        conn.closed('silent');
      } else if (conn.state === 'ready' && conn.inFlight > 0 && conn.silentFor(now) > probeAfterMs) {
        // Busy and silent: an extra ping. A live client answers at once; a hung one does not and
        // gets no new requests (pool) long before the heartbeat would close its tunnel.
        conn.probe(probeTimeoutMs, now);
        if (conn.unresponsive(now) && conn.loggedProbeAt !== conn.probedAt) {
          conn.loggedProbeAt = conn.probedAt;
          metrics.probeMisses.inc();
          logger.warn({ connection: conn.id, silentMs: conn.silentFor(now), inFlight: conn.inFlight }, 'tunnel did not answer a probe while busy (client hung?); no new requests go to it until it does, idempotent ones on it go elsewhere');
          conn.reportUnresponsive();
        }
      }
    }
    pool.sweep(now);
  }, sweepMs);
  sweeper.unref();

  return {
    handleRequest(req: IncomingMessage, res: ServerResponse): void {
      // A long-polling upload declared above the frame cap is refused before engine.io reads it
      // (engine.io would read it all and answer a bare 413).
      const declared = Number(req.headers['content-length']);
      if (req.method === 'POST' && Number.isFinite(declared) && declared > config.maxFrameBytes) {
        logger.warn({ bytes: declared, limitBytes: config.maxFrameBytes }, 'tunnel message larger than SOCKET_MAX_RESPONSE_LENGTH refused');
        return refuseBody(req, res, FAILURES.FRAME_TOO_LARGE, { ok: false, message: `tunnel message exceeds ${config.maxFrameBytes} bytes` });
      }
      engine.handleRequest(req, res);
    },
    handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
      engine.handleUpgrade(req, socket, head);
    },
    connections(): ReadonlySet<Connection> {
      return live;
    },
    /** Re-sends client-connected for every identified tunnel (after the dispatcher forgot this server). */
    reannounce(): void {
      for (const conn of live) {
        if (conn.identity && (conn.state === 'ready' || conn.state === 'draining') && !conn.terminating) {
          dispatcher.clientConnected(conn.identity.token, conn.identity.clientId, conn.identity.version, conn.identity.role, conn.identity.instance);
        }
      }
    },
    /** Drain: no new relays; every client is told to go elsewhere once its tunnel holds nothing. */
    drainAll(reason: string): void {
      drainReason = reason;
      for (const conn of live) {
        conn.drain();
        conn.sendAwayWhenIdle(reason);
      }
    },
    /**
     * Drains the tunnels that pass through peer `peerId` (it is stopping): no new relays on them,
     * and each is sent away once idle, so its client reconnects through the balancer to a live
     * server before the peer cuts the piped socket. Returns how many were newly drained.
     */
    drainVia(peerId: string, reason: string): number {
      let count = 0;
      for (const [conn, by] of viaPeer) {
        // Not yet handshaken tunnels are left for the next refresh (identification sets them ready).
        if (by !== peerId || conn.state !== 'ready') continue;
        conn.drain();
        conn.sendAwayWhenIdle(reason);
        count++;
      }
      return count;
    },
    /**
     * Closes every tunnel. Clients already sent away first get `graceMs` to take their
     * primus::server::close and 4001 (written once the frames before them are out), so the
     * engine's plain close does not overtake them.
     */
    async close(graceMs = 1000): Promise<void> {
      clearInterval(sweeper);
      const leaving = [...live].filter((c) => c.sentAway && c.state !== 'closed').map((c) => c.whenClosed);
      if (leaving.length > 0) await waitAtMost(Promise.all(leaving), graceMs);
      engine.close();
      for (const conn of live) conn.closed('server stopped');
    },
  };
}

export type Tunnels = ReturnType<typeof createTunnels>;
