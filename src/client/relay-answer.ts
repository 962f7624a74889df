import { pipeline, type Readable } from 'node:stream';
import { classifyEgressError } from '../http/errors.js';
import type { RelayRequest, ResponseHead } from '../protocol/index.js';
import type { Answer as OriginAnswer } from '../http/egress.js';
import { discardBody } from './response-writer.js';
import { toInsecure } from './insecure-downstream.js';
import { BodyLogTap, bodyForLog } from './body-log.js';
import { applyVarSubstitution } from './var-substitution.js';
import { originHeaders } from './origin-request.js';
import { callOrigin, errorTypeForStatus, originError } from './origin-egress.js';
import { authorize } from './request-filter.js';
import { signGitData } from './commit-signing/git-data-step.js';
import { brokerError, type Answer, type RelayContext, type WholeAnswer } from './relay-context.js';

function requestBodyFields(body: Buffer | string | undefined): Record<string, unknown> {
  const { body: text, ...rest } = bodyForLog(body);
  return { requestBody: text, ...rest };
}

function responseBodyFields(body: Buffer): Record<string, unknown> {
  const { body: text, ...rest } = bodyForLog(body);
  return { responseBody: text, ...rest };
}

/** The origin's answer as it goes back: headers copied, body logged and URL-rewritten when asked, errorType set. */
function shapeAnswer(ctx: RelayContext, req: RelayRequest, requestId: string, res: OriginAnswer): { head: ResponseHead; body: Buffer | Readable } {
  const { opts, log } = ctx;
  // The egress builds a fresh headers object per answer (no undefined values): used as it is.
  let resHeaders = res.headers;
  let body: Buffer | Readable = res.body;
  if (opts.logBodies) {
    const fields = { requestId, method: req.method, url: req.url, status: res.statusCode };
    if (Buffer.isBuffer(body)) log.debug({ ...fields, ...responseBodyFields(body) }, 'origin answer body');
    else body = pipeline(body, new BodyLogTap(log, fields), () => undefined);
  }
  if (opts.bodyUrlRewriter?.applies(resHeaders)) ({ headers: resHeaders, body } = opts.bodyUrlRewriter.rewrite(resHeaders, body));
  const errorType = errorTypeForStatus(res.statusCode);
  const head: ResponseHead = errorType ? { status: res.statusCode, headers: resHeaders, errorType } : { status: res.statusCode, headers: resHeaders };
  // Checked first: the fields object would be built for every request only to be dropped.
  if (log.isLevelEnabled('debug')) log.debug({ requestId, method: req.method, url: req.url, status: res.statusCode }, 'origin answered');
  return { head, body };
}

function tooLargeForAck(ctx: RelayContext, req: RelayRequest, requestId: string): WholeAnswer {
  const limit = ctx.opts.maxAckResponseBytes;
  ctx.log.warn({ requestId, url: req.url, limit }, 'origin answer too large for an ack');
  return brokerError(502, 'BODY_TOO_LARGE', `response exceeds ${limit} bytes`);
}

/**
 * The answer to a request from the broker server: filter (private rules), build the target,
 * inject credentials, call the origin through the one egress stack. For an ack (`forAck`) the
 * body is read whole, with a cap.
 */
export function answerFor(ctx: RelayContext, req: RelayRequest, requestId: string, forAck: true): Promise<WholeAnswer>;
export function answerFor(ctx: RelayContext, req: RelayRequest, requestId: string, forAck: false): Promise<Answer>;
export async function answerFor(ctx: RelayContext, req: RelayRequest, requestId: string, forAck: boolean): Promise<Answer> {
  const { opts, log } = ctx;
  // Most requests are decided at once: awaited only when a live value must be waited for.
  const decided = authorize(ctx, req, requestId);
  const result = decided instanceof Promise ? await decided : decided;
  if ('head' in result) return result;
  // Pools rotate as in the rule's origin: the view the match used, or the relay's own rotation.
  req = applyVarSubstitution(req, ctx.vars, result.variables ?? ctx.varsResolver);
  if (opts.commitSigner) {
    const signed = await signGitData(ctx, opts.commitSigner, req, requestId);
    if ('head' in signed) return signed;
    req = signed;
  }
  const headers = originHeaders(req, requestId, result.authorization, opts.wireVersion, opts.removeXForwardedHeaders);
  if (opts.logBodies) log.debug({ requestId, method: req.method, url: req.url, ...requestBodyFields(req.body) }, 'relaying request body');
  let res;
  try {
    res = await callOrigin(ctx, opts.insecureDownstream ? toInsecure(result.targetUrl) : result.targetUrl, req.method, headers, req.body);
  } catch (err) {
    const e = classifyEgressError(err);
    log.warn({ requestId, method: req.method, url: req.url, code: e.code, err: e.message }, 'origin call failed');
    return brokerError(e.status, e.code, e.message);
  }
  const answer = shapeAnswer(ctx, req, requestId, res);
  if (!forAck) return answer;
  // One ack is one message: the body is buffered, with a cap.
  const body = answer.body;
  if (Buffer.isBuffer(body)) return body.length <= opts.maxAckResponseBytes ? answer : tooLargeForAck(ctx, req, requestId);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      size += (chunk as Buffer).length;
      if (size > opts.maxAckResponseBytes) {
        discardBody(body);
        return tooLargeForAck(ctx, req, requestId);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    const e = originError(err);
    log.warn({ requestId, url: req.url, code: e.code, err: e.message }, 'origin answer broke off');
    return brokerError(e.status, e.code, e.message);
  }
  answer.body = Buffer.concat(chunks);
  return answer;
}
