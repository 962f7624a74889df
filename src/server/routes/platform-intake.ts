import type { IncomingMessage, ServerResponse } from 'node:http';
import { isSafePath } from '../../filters/index.js';
import { describeError } from '../../http/errors.js';
import { BodyTooLargeError, readBody, refuseBody, sendFailure } from '../../http/server-helpers.js';
import { FAILURES } from '../../protocol/failures.js';
import { relayHeaders } from '../platform-request.js';
import type { ServerParts } from './context.js';

/** A platform request read and checked, ready to go over a tunnel here or to a peer. */
export interface PlatformRequest {
  token: string;
  url: string;
  rawUrl: string;
  requestId: string;
  method: string;
  headers: ReturnType<typeof relayHeaders>;
  body: Buffer | undefined;
}

function hasBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}

/** The body (bounded) and the public rules; undefined when the request was answered already (refused). */
export async function readPlatformRequest(parts: Pick<ServerParts, 'config' | 'logger' | 'metrics'>, req: IncomingMessage, res: ServerResponse, rawUrl: string, parsed: { token: string; url: string; contextId?: string }, requestId: string): Promise<PlatformRequest | undefined> {
  const { config, logger, metrics } = parts;
  const idHeader = { 'snyk-request-id': requestId };
  let body: Buffer | undefined;
  if (hasBody(req)) {
    try {
      body = await readBody(req, config.bodyLimitBytes);
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        refuseBody(req, res, FAILURES.BODY_TOO_LARGE, { ok: false, message: `request body exceeds ${config.bodyLimitBytes} bytes` }, idHeader);
        return undefined;
      }
      sendFailure(res, FAILURES.BAD_REQUEST, { ok: false, message: `could not read the request body: ${describeError(err)}` }, idHeader);
      return undefined;
    }
    if (body.length === 0) body = undefined;
  }
  const method = (req.method ?? 'GET').toUpperCase();
  const headers = relayHeaders(req.headers, requestId, parsed.contextId);
  let refusal: string | undefined;
  if (!isSafePath(parsed.url)) refusal = 'Request path is not normalized (path traversal), blocking HTTP request';
  else if (config.publicRules) {
    const result = config.publicRules.match({ method, url: parsed.url, headers, body });
    if (!result.allowed) {
      logger.info({ requestId, method, path: parsed.url.split('?')[0], reason: result.reason }, 'platform request blocked by the public rules');
      refusal = result.reason;
    }
  }
  if (refusal !== undefined) {
    sendFailure(res, FAILURES.FILTER_BLOCKED, { code: FAILURES.FILTER_BLOCKED.code, message: 'blocked', reason: refusal, url: parsed.url }, idHeader);
    return undefined;
  }
  if (body) metrics.bytes.inc({ direction: 'request' }, body.length);
  return { token: parsed.token, url: parsed.url, rawUrl, requestId, method, headers, body };
}

