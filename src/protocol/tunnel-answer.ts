import { ProtocolError } from './errors.js';
import { decodeResponseHead, MAX_RESPONSE_HEAD_BYTES, type ResponseHead } from './response-stream.js';

/**
 * Answers over the tunnel: our own extension, used only between our client and our server.
 *
 * The server offers it in its identify capabilities; the real snyk-broker client ignores
 * capabilities it does not know, and the real server never offers it, so with either real peer
 * every answer keeps to the contract (POST /response-data or an ack). Our client then sends a
 * small, complete answer as one binary websocket message on the tunnel the request came on,
 * instead of a POST: [0x01][uint16 BE streamingID length][streamingID][the exact bytes a
 * POST /response-data body would carry]. Larger or streamed answers still go by POST, which
 * has HTTP's backpressure; one message per answer needs none.
 */
export const TUNNEL_ANSWERS_CAPABILITY = 'ha-broker/tunnel-answers';

const ANSWER_FRAME = 0x01;

export interface TunnelAnswer {
  streamingID: string;
  head: ResponseHead;
  body: Buffer;
}

/**
 * The start every binary tunnel message of ours shares: [type][uint16 BE streamingID length][streamingID]
 * (answer frames here, stream frames in tunnel-stream.ts).
 */
export function framePrefix(type: number, streamingID: string): Buffer {
  const id = Buffer.from(streamingID, 'utf8');
  if (id.length === 0 || id.length > 0xffff) throw new ProtocolError('BAD_TUNNEL_ANSWER', 'streamingID must be 1 to 65535 bytes');
  const prefix = Buffer.allocUnsafe(3 + id.length);
  prefix[0] = type;
  prefix.writeUInt16BE(id.length, 1);
  id.copy(prefix, 3);
  return prefix;
}

/** The streamingID after a frame's type byte, and where it ends; undefined when the frame is too short for one. */
export function frameStreamingID(frame: Buffer): { streamingID: string; end: number } | undefined {
  if (frame.length < 3) return undefined;
  const end = 3 + frame.readUInt16BE(1);
  return end > 3 && frame.length >= end ? { streamingID: frame.toString('utf8', 3, end), end } : undefined;
}

/** `responseData` is the POST /response-data body: [uint32 LE head length][JSON head][body]. */
export function encodeTunnelAnswer(streamingID: string, responseData: Buffer): Buffer {
  return Buffer.concat([framePrefix(ANSWER_FRAME, streamingID), responseData]);
}

/** The streamingID of an answer frame whose head did not decode (to fail that request at once), if readable. */
export function tunnelAnswerStreamingID(frame: Buffer): string | undefined {
  return frame[0] === ANSWER_FRAME ? frameStreamingID(frame)?.streamingID : undefined;
}

export function decodeTunnelAnswer(frame: Buffer, maxHeadBytes = MAX_RESPONSE_HEAD_BYTES): TunnelAnswer {
  if (frame.length < 3 || frame[0] !== ANSWER_FRAME) throw new ProtocolError('BAD_TUNNEL_ANSWER', 'binary tunnel message is not an answer frame');
  const idLength = frame.readUInt16BE(1);
  const headAt = 3 + idLength;
  if (idLength === 0 || frame.length < headAt + 4) throw new ProtocolError('BAD_TUNNEL_ANSWER', 'answer frame ends inside its streamingID or head length');
  const streamingID = frame.toString('utf8', 3, headAt);
  const headLength = frame.readUInt32LE(headAt);
  if (headLength > maxHeadBytes) throw new ProtocolError('RESPONSE_HEAD_TOO_LARGE', `response head of ${headLength} bytes exceeds ${maxHeadBytes}`);
  const bodyAt = headAt + 4 + headLength;
  if (frame.length < bodyAt) throw new ProtocolError('RESPONSE_HEAD_TRUNCATED', 'answer frame ends inside its head');
  const head = decodeResponseHead(frame.subarray(headAt + 4, bodyAt));
  return { streamingID, head, body: frame.subarray(bodyAt) };
}
