import type { ServerResponse } from 'node:http';
import { Transform, pipeline, type Readable } from 'node:stream';
import { parseAckResponse, readResponseHead, ProtocolError, type ResponseHead } from '../protocol/index.js';
import { describeError } from '../http/errors.js';
import { sendJson } from '../http/server-helpers.js';
import { FAILURES } from '../protocol/failures.js';
import type { Logger } from '../observability/logger.js';
import type { ServerMetrics } from './metrics.js';
import type { RelayDeps } from './relay.js';
import type { RelayAttempt } from './relay-attempt.js';
import type { DeadlineQueue } from './deadline-queue.js';

/*
 * Answer intake: how the broker client's answer to one attempt reaches the platform, whether it
 * came in the ack, whole over the tunnel, or as a POST /response-data upload streamed through.
 */

export const UNKNOWN_STREAM_MESSAGE = 'Unable to find request matching streaming id.';

type HoldResult = 'end' | 'full' | 'slow' | 'aborted';

/**
 * Where the server's verdict on an answer upload goes: the answer to the POST /response-data,
 * or an `answer-done` event for a stream over the tunnel. Only the first verdict is sent.
 */
export interface AnswerReceipt {
  send(status: number, body: { message?: string }): void;
}

/** The verdict as the answer to the POST (nothing when that answer already left). */
export function httpReceipt(res: ServerResponse): AnswerReceipt {
  return {
    send(status, body) {
      if (!res.headersSent && !res.destroyed) sendJson(res, status, body);
    },
  };
}

function countingTransform(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}

/** Writes a complete answer to the platform; the attempt is answered either way. */
export function answerWhole(attempt: RelayAttempt, metrics: ServerMetrics, head: ResponseHead, body: Buffer): void {
  if (attempt.relay.writeHead(head, attempt.connection)) {
    metrics.bytes.inc({ direction: 'response' }, body.length);
    attempt.relay.res.end(body);
  }
  attempt.settle({ kind: 'answered' });
}

/** The answer the client put in its ack (`args` of the ack): checked, then written whole. */
export function answerFromAck(attempt: RelayAttempt, metrics: ServerMetrics, args: unknown[]): void {
  let answer;
  try {
    answer = parseAckResponse(args[0]);
  } catch (err) {
    return attempt.settle({ kind: 'failed', failure: FAILURES.BAD_RESPONSE, message: `invalid answer from the broker client: ${(err as Error).message}` });
  }
  if (answer.status < 100 || answer.status > 599) {
    return attempt.settle({ kind: 'failed', failure: FAILURES.BAD_RESPONSE, message: 'invalid answer status from the broker client' });
  }
  const body = answer.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(answer.body) ? answer.body : Buffer.from(answer.body, 'utf8');
  const headers = { ...(answer.headers ?? {}) } as Record<string, unknown>;
  delete headers['content-length'];
  answerWhole(attempt, metrics, { status: answer.status, headers: { ...headers, 'content-length': String(body.length) } }, body);
}

/**
 * Takes an answer upload (a POST /response-data body, or a stream over the tunnel: the same
 * bytes) through to the platform: its head, then (held or not) its body.
 */
export async function consumeUpload(attempt: RelayAttempt, deps: RelayDeps, upload: Readable, uploadRes: AnswerReceipt): Promise<void> {
  const relay = attempt.relay;
  let head: ResponseHead;
  try {
    head = await readResponseHead(upload);
  } catch (err) {
    return refuseUpload(attempt, deps.logger, err, upload, uploadRes);
  }
  if (attempt.settled) {
    // Timed out or the platform left while the head was on its way.
    uploadRes.send(500, { message: UNKNOWN_STREAM_MESSAGE });
    upload.resume();
    return;
  }
  const hold = relay.canRetry && deps.retryBufferBytes > 0;
  const held: Buffer[] = [];
  // Without a retry buffer the head still waits for the first body byte (at most
  // retryBufferMs): an upload cut before any body byte then gets the platform a clean 502
  // instead of a connection closed without a status line.
  {
    const result = await holdFirstBytes(attempt, upload, held, hold ? deps.retryBufferBytes : 0, deps.deadlines.hold);
    if (attempt.settled) return;
    if (result === 'aborted') {
      upload.destroy();
      return attempt.settle({ kind: 'dropped', detail: 'answer upload aborted' });
    }
    if (result === 'end') {
      const body = Buffer.concat(held);
      answerWhole(attempt, deps.metrics, head, body);
      uploadRes.send(200, {});
      return;
    }
  }
  if (!relay.writeHead(head, attempt.connection)) {
    upload.destroy();
    return attempt.settle({ kind: 'answered' });
  }
  attempt.settle({ kind: 'answered' });
  streamAnswer(attempt, deps, held, upload, uploadRes);
}

/** The upload's head could not be read: the client hears 400, the attempt fails. */
function refuseUpload(attempt: RelayAttempt, logger: Logger, err: unknown, upload: Readable, uploadRes: AnswerReceipt): void {
  const code = err instanceof ProtocolError ? err.code : 'RESPONSE_HEAD_INVALID';
  const message = (err as Error).message;
  logger.warn({ requestId: attempt.relay.init.requestId, connection: attempt.connection.id, code, error: message }, 'invalid response-data stream from the broker client');
  uploadRes.send(400, { message: `Invalid response stream: ${message}` });
  upload.resume();
  if (attempt.settled) return;
  return attempt.settle({ kind: 'failed', failure: FAILURES.BAD_RESPONSE, message: `the broker client sent an invalid answer: ${message}` });
}

/** The head is out: what was held goes first, then the rest of the upload streams through. */
function streamAnswer(attempt: RelayAttempt, deps: RelayDeps, held: Buffer[], upload: Readable, uploadRes: AnswerReceipt): void {
  const { metrics, logger } = deps;
  const relay = attempt.relay;
  for (const chunk of held) {
    metrics.bytes.inc({ direction: 'response' }, chunk.length);
    relay.res.write(chunk);
  }
  pipeline(
    upload,
    countingTransform((n) => metrics.bytes.inc({ direction: 'response' }, n)),
    relay.res,
    (err) => {
      if (err) {
        logger.warn({ requestId: relay.init.requestId, connection: attempt.connection.id, error: describeError(err) }, 'answer stream broke off');
        relay.res.destroy();
        uploadRes.send(500, { message: 'answer stream broke off' });
        return;
      }
      uploadRes.send(200, {});
    },
  );
}

/** Holds the first bytes of an idempotent answer: until it ends, exceeds the buffer, or takes too long. */
function holdFirstBytes(attempt: RelayAttempt, upload: Readable, held: Buffer[], limit: number, deadlines: DeadlineQueue<() => void>): Promise<HoldResult> {
  return new Promise((resolve) => {
    let size = 0;
    let finished = false;
    const finish = (r: HoldResult) => {
      if (finished) return;
      finished = true;
      deadlines.delete(deadline);
      upload.off('data', onData);
      upload.off('end', onEnd);
      upload.off('error', onAbort);
      upload.off('close', onClose);
      if (r === 'full' || r === 'slow') upload.pause();
      resolve(r);
    };
    const onData = (chunk: Buffer) => {
      held.push(chunk);
      size += chunk.length;
      if (size > limit) finish('full');
    };
    const onEnd = () => finish('end');
    const onAbort = () => finish('aborted');
    const onClose = () => {
      if (!upload.readableEnded) finish('aborted');
    };
    // At most the queue's duration (retryBufferMs), then it streams anyway.
    const deadline = deadlines.add(() => finish('slow'));
    upload.on('data', onData);
    upload.on('end', onEnd);
    upload.on('error', onAbort);
    upload.on('close', onClose);
    // What happened while the head was read (its events are gone): the body was empty, or the upload broke off.
    if (upload.readableEnded) finish('end');
    else if (attempt.settled || upload.destroyed) finish('aborted');
  });
}
