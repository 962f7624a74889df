import type { Readable } from 'node:stream';
import { ProtocolError } from './errors.js';
import { parseJson } from '../json.js';

/** Content type of a streamed answer on POST /response-data. */
export const RESPONSE_STREAM_CONTENT_TYPE = 'application/vnd.broker.stream+octet-stream';

export interface ResponseHead {
  status: number;
  headers?: Record<string, string | string[]>;
  errorType?: string;
}

/** The JSON head cap: generous for any header set, small enough to refuse garbage early. */
export const MAX_RESPONSE_HEAD_BYTES = 1024 * 1024;

/**
 * [uint32 LE length][JSON head]; the body bytes follow as they come. A body already in memory
 * goes into the same buffer (one allocation, one copy of the body: a small answer's hot path).
 */
export function encodeResponseHead(head: ResponseHead, body?: Buffer | string): Buffer {
  const json = JSON.stringify(head);
  const jsonLength = Buffer.byteLength(json, 'utf8');
  const bodyLength = body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.length;
  const out = Buffer.allocUnsafe(4 + jsonLength + bodyLength);
  out.writeUInt32LE(jsonLength, 0);
  out.write(json, 4, 'utf8');
  if (typeof body === 'string') out.write(body, 4 + jsonLength, 'utf8');
  else if (body !== undefined) body.copy(out, 4 + jsonLength);
  return out;
}

export function validateResponseHead(value: unknown): ResponseHead {
  const head = value as Partial<ResponseHead> | null;
  if (!head || typeof head !== 'object' || Array.isArray(head)) {
    throw new ProtocolError('RESPONSE_HEAD_INVALID', 'response head is not a JSON object');
  }
  if (typeof head.status !== 'number' || !Number.isInteger(head.status) || head.status < 100 || head.status > 599) {
    throw new ProtocolError('RESPONSE_HEAD_INVALID', 'response head has no valid status');
  }
  if (head.headers !== undefined && (head.headers === null || typeof head.headers !== 'object' || Array.isArray(head.headers))) {
    throw new ProtocolError('RESPONSE_HEAD_INVALID', 'response head headers is not an object');
  }
  if (head.errorType !== undefined && typeof head.errorType !== 'string') {
    throw new ProtocolError('RESPONSE_HEAD_INVALID', 'response head errorType is not a string');
  }
  return head as ResponseHead;
}

/** The JSON head (without its length prefix), parsed and checked. */
export function decodeResponseHead(json: Buffer): ResponseHead {
  let parsed: unknown;
  try {
    parsed = parseJson(json.toString('utf8'));
  } catch (err) {
    throw new ProtocolError('RESPONSE_HEAD_INVALID', 'response head is not valid JSON', { cause: err });
  }
  return validateResponseHead(parsed);
}

/**
 * Reads the length-prefixed head off a response-data stream without consuming the body:
 * the stream is left positioned at the first body byte, so the caller pipes it on with
 * backpressure intact.
 */
export function readResponseHead(stream: Readable, maxHeadBytes = MAX_RESPONSE_HEAD_BYTES): Promise<ResponseHead> {
  return new Promise<ResponseHead>((resolve, reject) => {
    // A stream that is already over emits no more events: say so now instead of waiting forever.
    if (stream.destroyed || stream.readableEnded) {
      const cause = stream.errored ?? undefined;
      reject(new ProtocolError('RESPONSE_HEAD_TRUNCATED', `response stream ${stream.readableEnded ? 'ended' : 'closed'} before its head${cause ? `: ${cause.message}` : ''}`, { cause }));
      return;
    }
    let length: number | undefined;
    const cleanup = () => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
    };
    const fail = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onReadable = () => {
      try {
        if (length === undefined) {
          const prefix = stream.read(4) as Buffer | null;
          if (prefix === null) return;
          // At end of stream read() hands back what is left, even when short.
          if (prefix.length < 4) return fail(new ProtocolError('RESPONSE_HEAD_TRUNCATED', 'response stream ended inside its length prefix'));
          length = prefix.readUInt32LE(0);
          if (length > maxHeadBytes) {
            fail(new ProtocolError('RESPONSE_HEAD_TOO_LARGE', `response head of ${length} bytes exceeds ${maxHeadBytes}`));
            return;
          }
        }
        const json = length === 0 ? Buffer.alloc(0) : (stream.read(length) as Buffer | null);
        if (json === null) return;
        if (json.length < length) return fail(new ProtocolError('RESPONSE_HEAD_TRUNCATED', 'response stream ended inside its head'));
        const head = decodeResponseHead(json);
        cleanup();
        resolve(head);
      } catch (err) {
        fail(err as Error);
      }
    };
    const onEnd = () => fail(new ProtocolError('RESPONSE_HEAD_TRUNCATED', 'response stream ended inside its head'));
    const onClose = () => fail(new ProtocolError('RESPONSE_HEAD_TRUNCATED', 'response stream closed inside its head'));
    const onError = (err: Error) => fail(new ProtocolError('RESPONSE_HEAD_TRUNCATED', `response stream failed inside its head: ${err.message}`, { cause: err }));
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
    onReadable();
  });
}
