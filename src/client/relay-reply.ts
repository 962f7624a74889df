import { describeError } from '../http/errors.js';
import { HOP_BY_HOP } from '../http/server-helpers.js';
import { TUNNEL_ANSWERS_CAPABILITY, TUNNEL_STREAMS_CAPABILITY, type RelayRequest, type Reply } from '../protocol/index.js';
import { discardBody } from './response-writer.js';
import type { Tunnel } from './tunnel.js';
import { answerFor } from './relay-answer.js';
import { brokerError, type Answer, type RelayContext, type WholeAnswer } from './relay-context.js';

export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

/** Answers by ack: one message, the body whole. Returns the body's size. */
export function replyByAck(reply: Reply, answer: WholeAnswer, requestId: string): number {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(answer.head.headers ?? {})) {
    if (k === 'content-length' || k === 'transfer-encoding' || HOP_BY_HOP.has(k)) continue;
    headers[k] = v;
  }
  headers['snyk-request-id'] = requestId;
  headers['x-broker-ws-response'] = 'true';
  const body = answer.body === undefined ? '' : Buffer.isBuffer(answer.body) ? answer.body.toString('utf8') : answer.body;
  reply({ status: answer.head.status, headers, body, ...(answer.head.errorType ? { errorType: answer.head.errorType } : {}) });
  return Buffer.byteLength(body);
}

/** Answers by legacy `chunk` events over the tunnel: head, body chunks, end. Returns the body's size. */
async function replyByChunks(tunnel: Tunnel, streamingID: string, answer: Answer, requestId: string): Promise<number> {
  let bytes = 0;
  const head = { status: answer.head.status, headers: { ...(answer.head.headers ?? {}), 'snyk-request-id': requestId } };
  await tunnel.emitAndFlush('chunk', streamingID, '', false, head);
  const body = answer.body;
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    bytes = Buffer.byteLength(body);
    await tunnel.emitAndFlush('chunk', streamingID, Buffer.from(body), true);
    return bytes;
  }
  if (body) {
    for await (const chunk of body) {
      bytes += (chunk as Buffer).length;
      await tunnel.emitAndFlush('chunk', streamingID, chunk as Buffer, false);
    }
  }
  await tunnel.emitAndFlush('chunk', streamingID, '', true);
  return bytes;
}

function relayFailed(ctx: RelayContext, req: RelayRequest, requestId: string, err: unknown): WholeAnswer {
  // Never leave the platform waiting: the real server has no deadline of its own.
  ctx.log.error({ requestId, url: req.url, err: describeError(err) }, 'relay failed unexpectedly');
  return brokerError(500, 'INTERNAL_ERROR', 'broker client failed to handle the request');
}

function undelivered(ctx: RelayContext, req: RelayRequest, requestId: string, answer: Answer, err: unknown): void {
  discardBody(answer.body);
  ctx.log.warn({ requestId, url: req.url, err: describeError(err) }, 'failed to deliver the answer to the broker server');
  ctx.opts.metrics.requests.inc({ direction: 'inbound', status: 'undelivered' });
}

function delivered(ctx: RelayContext, tunnel: Tunnel, req: RelayRequest, requestId: string, status: number, bytes: number, via: string, started: number): void {
  const metrics = ctx.opts.metrics;
  metrics.requests.inc({ direction: 'inbound', status: statusClass(status) });
  metrics.bytes.inc({ direction: 'inbound' }, bytes);
  metrics.answers.inc({ via });
  ctx.log.info({ requestId, method: req.method, url: req.url, status, bytes, ms: Date.now() - started, role: tunnel.role, via }, 'relayed a request');
}

/** Relays a request that carries an ack id: the answer goes back as the ack. */
export async function deliverByAck(ctx: RelayContext, tunnel: Tunnel, req: RelayRequest, requestId: string, reply: Reply, started: number): Promise<void> {
  let answer: WholeAnswer;
  try {
    answer = await answerFor(ctx, req, requestId, true);
  } catch (err) {
    answer = relayFailed(ctx, req, requestId, err);
  }
  let bytes: number;
  try {
    bytes = replyByAck(reply, answer, requestId);
  } catch (err) {
    undelivered(ctx, req, requestId, answer, err);
    return;
  }
  delivered(ctx, tunnel, req, requestId, answer.head.status, bytes, 'ack', started);
}

/** Relays a request with a streamingID: answered by streamed POST /response-data (or over the tunnel), else by `chunk` events. */
export async function deliverStreamed(ctx: RelayContext, tunnel: Tunnel, req: RelayRequest, requestId: string, viaPost: boolean, started: number): Promise<void> {
  // The answer goes to the server that sent the request, even if the tunnel moves meanwhile.
  const placement = tunnel.placement;
  // The connection the request came on: an answer sent over the tunnel must use that one.
  const channel = ctx.opts.tunnelAnswers !== false && tunnel.capabilities.includes(TUNNEL_ANSWERS_CAPABILITY) ? tunnel.channel : undefined;
  const streams = channel && ctx.opts.tunnelStreams === true && tunnel.capabilities.includes(TUNNEL_STREAMS_CAPABILITY) ? channel : undefined;
  let answer: Answer;
  try {
    answer = await answerFor(ctx, req, requestId, false);
  } catch (err) {
    answer = relayFailed(ctx, req, requestId, err);
  }
  let bytes: number;
  let via = viaPost ? 'response-data' : 'chunk';
  try {
    if (viaPost) {
      if (!placement) throw new Error('tunnel has no placement');
      ({ bytes, via } = await ctx.opts.writer.send(
        {
          serverUrl: placement.serverUrl,
          serverId: placement.serverId,
          role: tunnel.role,
          streamingID: req.streamingID,
          requestId,
          requestHeaders: req.headers,
          overTunnel: channel && ((frame) => tunnel.sendAnswer(frame, channel)),
          streamOverTunnel: streams && ((head, body, timeoutMs) => tunnel.streamAnswer(streams, req.streamingID, head, body, timeoutMs)),
        },
        answer.head,
        answer.body,
      ));
    } else bytes = await replyByChunks(tunnel, req.streamingID, answer, requestId);
  } catch (err) {
    undelivered(ctx, req, requestId, answer, err);
    return;
  }
  delivered(ctx, tunnel, req, requestId, answer.head.status, bytes, via, started);
}
