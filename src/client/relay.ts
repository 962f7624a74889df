import { randomUUID } from 'node:crypto';
import { waitAtMost } from '../http/backoff.js';
import { describeError } from '../http/errors.js';
import { isUuid, parseRelayRequest, type RelayRequest, type Reply } from '../protocol/index.js';
import type { Tunnel } from './tunnel.js';
import { stripContext } from './origin-request.js';
import { brokerError, relayContext, type RelayContext, type RelayOptions, type WholeAnswer } from './relay-context.js';
import { FAILURES } from '../protocol/failures.js';
import { FAILURE_HEADER } from '../http/server-helpers.js';
import { deliverByAck, deliverStreamed, replyByAck, statusClass } from './relay-reply.js';
import { handleService } from './relay-service.js';

export type { RelayOptions } from './relay-context.js';
export { applyVarSubstitution } from './var-substitution.js';
export { originHeaders, stripContext } from './origin-request.js';
export { errorTypeForStatus, originError } from './origin-egress.js';

/**
 * A request event that does not parse: refused with 400, by ack or, when it names a stream, by
 * POST (the returned promise). Not async: the ack goes out at once, as the caller's other paths.
 */
function refuseBadRequest(ctx: RelayContext, tunnel: Tunnel, raw: unknown, reply: Reply | undefined, err: unknown): Promise<unknown> | undefined {
  ctx.log.warn({ role: tunnel.role, err: (err as Error).message }, 'bad request event from the broker server');
  ctx.opts.metrics.requests.inc({ direction: 'inbound', status: '4xx' });
  const answer = brokerError(400, 'BAD_REQUEST', (err as Error).message);
  if (reply) {
    replyByAck(reply, answer, randomUUID());
    return undefined;
  }
  const streamingID = (raw as { streamingID?: unknown } | null)?.streamingID;
  if (typeof streamingID !== 'string' || !streamingID || !tunnel.placement) return undefined;
  return ctx.opts.writer.send({ serverUrl: tunnel.placement.serverUrl, serverId: tunnel.placement.serverId, role: tunnel.role, streamingID, requestId: randomUUID(), requestHeaders: {} }, answer.head, answer.body);
}

async function handleRequest(ctx: RelayContext, tunnel: Tunnel, raw: unknown, reply: Reply | undefined): Promise<void> {
  const started = Date.now();
  let req: RelayRequest;
  try {
    req = parseRelayRequest(raw);
  } catch (err) {
    const refused = refuseBadRequest(ctx, tunnel, raw, reply, err);
    if (refused) await refused;
    return;
  }
  const headerId = req.headers['snyk-request-id'];
  const requestId = typeof headerId === 'string' && isUuid(headerId) ? headerId : req.requestId && isUuid(req.requestId) ? req.requestId : randomUUID();
  const ctxUrl = req.url.startsWith('/ctx/') ? stripContext(req.url) : undefined;
  if (ctxUrl && ctxUrl.url !== req.url) req = { ...req, url: ctxUrl.url };
  const headerContext = req.headers['x-snyk-broker-context-id'];
  ctx = ctx.forContext(typeof headerContext === 'string' && headerContext ? headerContext : ctxUrl?.contextId);
  tunnel.requestsHandled++;
  ctx.opts.metrics.tunnelRequests.inc({ role: tunnel.role });
  const viaAck = reply !== undefined;
  const viaPost = !viaAck && req.streamingID !== '' && tunnel.capabilities.includes('receive-post-streams');
  const viaChunks = !viaAck && !viaPost && req.streamingID !== '';
  if (!viaAck && !viaPost && !viaChunks) {
    ctx.log.warn({ requestId, url: req.url }, 'request event has neither an ack id nor a streamingID; nothing to answer');
    return;
  }
  // Legacy chunk answers travel over this tunnel: a drain must keep it open for them.
  if (viaChunks) tunnel.ackInflight++;
  try {
    await (reply ? deliverByAck(ctx, tunnel, req, requestId, reply, started) : deliverStreamed(ctx, tunnel, req, requestId, viaPost, started));
  } finally {
    if (viaChunks) tunnel.ackInflight--;
  }
}

/** The answer to a request naming a context that cannot serve it (none such, or off for a missing credential). */
function contextRefusal(contextId: string, why: string): WholeAnswer {
  const f = FAILURES.UNKNOWN_CONTEXT;
  const answer = brokerError(f.status, f.code, `context ${contextId}: ${why}`);
  answer.head.headers![FAILURE_HEADER] = f.reason;
  return answer;
}

/** The relay's context, which hands each request the context it names (Universal Broker), or itself. */
function withContexts(opts: RelayOptions): RelayContext {
  const base = relayContext(opts);
  if (!opts.contexts) return base;
  const byId = new Map<string, RelayContext>();
  for (const [id, c] of opts.contexts) {
    const own = relayContext(typeof c === 'string' ? { ...opts, refusal: contextRefusal(id, c) } : { ...opts, ...c });
    byId.set(id.toLowerCase(), own);
  }
  const unknown = new Map<string, RelayContext>();
  const forContext = (id: string | undefined): RelayContext => {
    if (!id) return base;
    const found = byId.get(id.toLowerCase());
    if (found) return found;
    // An id this connection does not have: refused (Snyk throws and interrupts the request).
    let refused = unknown.get(id);
    if (!refused) {
      refused = relayContext({ ...opts, refusal: contextRefusal(id, 'this connection has no such context') });
      if (unknown.size < 100) unknown.set(id, refused);
    }
    return refused;
  };
  // Every context's view hands on the same way (a context's request never picks another's rules by accident).
  for (const own of [base, ...byId.values()]) own.forContext = forContext;
  return base;
}

/**
 * Relays `request` events from the broker server to internal systems: filter (private rules),
 * build the target, inject credentials, call the origin through the one egress stack, and
 * answer by streamed POST /response-data, by ack, or by legacy `chunk` events.
 */
export function createRelay(opts: RelayOptions) {
  const ctx = withContexts(opts);
  const log = ctx.log;
  const inflight = new Set<Promise<void>>();
  let lastEventAt = 0;

  function track(p: Promise<void>): void {
    // One reaction for both outcomes: a catch and a finally were two more promises per request.
    const done = () => {
      inflight.delete(tracked);
      opts.metrics.relaysInFlight.dec();
    };
    const tracked: Promise<void> = p.then(done, (err: unknown) => {
      log.error({ err: describeError(err) }, 'relay failed unexpectedly');
      done();
    });
    inflight.add(tracked);
    opts.metrics.relaysInFlight.inc();
  }

  /** Acks need this tunnel open until answered: counted so a drain closes it only after. */
  function ackBound(tunnel: Tunnel, reply: Reply | undefined, p: Promise<void>): Promise<void> {
    if (!reply) return p;
    tunnel.ackInflight++;
    return p.finally(() => tunnel.ackInflight--);
  }

  return {
    /** Entry point for tunnel events. */
    onEvent(tunnel: Tunnel, name: string, args: unknown[], reply: Reply | undefined): void {
      lastEventAt = Date.now();
      if (name === 'request') return track(ackBound(tunnel, reply, handleRequest(ctx, tunnel, args[0], reply)));
      if (name === 'service') return track(ackBound(tunnel, reply, handleService(ctx, tunnel, args[0], reply)));
      log.warn({ role: tunnel.role, event: name }, 'unknown event from the broker server; ignored');
      reply?.({ status: 400, headers: {}, body: JSON.stringify({ code: 'UNKNOWN_EVENT', message: `unknown event ${name}` }) });
    },
    get inflight(): number {
      return inflight.size;
    },
    /** When the last event from a broker server arrived (the drain waits for a quiet tunnel). */
    get lastEventAt(): number {
      return lastEventAt;
    },
    /** Resolves when every in-flight relay has finished (or the deadline passes). */
    async settle(timeoutMs: number): Promise<boolean> {
      const deadline = Date.now() + timeoutMs;
      while (inflight.size > 0) {
        const left = deadline - Date.now();
        if (left <= 0) return false;
        await waitAtMost(Promise.allSettled([...inflight]), left);
      }
      return true;
    },
    statusClass,
  };
}

export type Relay = ReturnType<typeof createRelay>;
