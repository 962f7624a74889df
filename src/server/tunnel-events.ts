import type { Logger } from '../observability/logger.js';
import { decodeStreamFrame, decodeTunnelAnswer, isStreamFrame, tunnelAnswerStreamingID } from '../protocol/index.js';
import { describeError } from '../http/errors.js';
import type { Connection, ConnectionHooks } from './connection.js';
import type { DispatcherReporter } from './dispatcher-reporter.js';
import type { ServerMetrics } from './metrics.js';
import type { PendingAnswers } from './pending-answers.js';
import type { TunnelRegistry } from './tunnel-registry.js';
import { IncomingAnswerStreams } from './tunnel-answer-streams.js';
import type { WebhookForwarder } from './webhooks.js';

export interface TunnelEventDeps {
  /** Requests waiting for an answer, for answers that come over the tunnel. */
  pending: PendingAnswers;
  dispatcher: DispatcherReporter;
  webhooks: WebhookForwarder;
  registry: TunnelRegistry;
  metrics: ServerMetrics;
  logger: Logger;
}

export type TunnelEventHooks = Pick<ConnectionHooks, 'onEvent' | 'onPing' | 'onBadFrame' | 'onAnswer'>;

/**
 * What an identified client sends over its tunnel: webhooks to forward, terminate and shutdown
 * notices, pings (reported to the dispatcher), and answers to relayed requests.
 */
export function tunnelEventHooks(deps: TunnelEventDeps): TunnelEventHooks {
  const { pending, dispatcher, metrics, logger } = deps;
  const streams = new WeakMap<Connection, IncomingAnswerStreams>();
  const badFrame = (conn: Connection, err: Error) => {
    metrics.badFrames.inc();
    logger.warn({ connection: conn.id, error: err.message }, 'invalid answer over the tunnel');
  };
  const streamsOf = (conn: Connection) => {
    let s = streams.get(conn);
    if (!s) streams.set(conn, (s = new IncomingAnswerStreams(conn, { pending, logger, onBadFrame: badFrame })));
    return s;
  };
  return {
    onEvent(conn, name, args, id) {
      if (name === 'request' && id !== undefined) return forwardWebhook(deps.webhooks, conn, args, id);
      if (name === 'terminate') return clientTerminating(deps, conn);
      if (name === 'client-event') return clientEvent(deps, conn, args);
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
      if (isStreamFrame(frame)) {
        let decoded;
        try {
          decoded = decodeStreamFrame(frame);
        } catch (err) {
          return badFrame(conn, err as Error);
        }
        return streamsOf(conn).receive(decoded);
      }
      let answer;
      try {
        answer = decodeTunnelAnswer(frame);
      } catch (err) {
        badFrame(conn, err as Error);
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
  };
}

/** A webhook the client received: forwarded to the platform, its answer sent back in the ack. */
function forwardWebhook(webhooks: WebhookForwarder, conn: Connection, args: unknown[], id: number): void {
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
}

function clientTerminating(deps: TunnelEventDeps, conn: Connection): void {
  const wasReady = conn.state === 'ready';
  conn.terminating = true;
  conn.drain();
  if (wasReady && conn.identity) deps.registry.updateGauge(conn.identity.token);
  deps.logger.info({ connection: conn.id }, 'client is terminating');
}

function clientEvent(deps: TunnelEventDeps, conn: Connection, args: unknown[]): void {
  const type = (args[0] as { event?: { type?: unknown } } | undefined)?.event?.type;
  if (type === 'client-shutdown') {
    // The client is stopping: no new relays here; what it holds finishes (answers may still come by POST after the tunnel closes).
    const wasReady = conn.state === 'ready';
    conn.drain();
    if (wasReady && conn.identity) deps.registry.updateGauge(conn.identity.token);
    deps.logger.info({ connection: conn.id, inFlight: conn.inFlight }, 'client is shutting down; no new requests go to this connection');
    return;
  }
  deps.logger.debug({ connection: conn.id, event: type }, 'client event');
}
