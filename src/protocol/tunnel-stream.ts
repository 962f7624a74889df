import { ProtocolError } from './errors.js';
import { framePrefix, frameStreamingID } from './tunnel-answer.js';

/**
 * Streamed answers over the tunnel: our own extension, used only between our client and our
 * server (both offer it), for answers too large or of unknown size for one frame. The real
 * snyk-broker server never offers it and its client never sends binary, so with either real
 * peer large answers keep going by POST /response-data.
 *
 * Client → server, binary websocket messages: [type][uint16 BE streamingID length][streamingID][payload]
 *   0x02 data:  the next bytes of what a POST /response-data body would carry (the first data
 *               message starts with the [uint32 LE head length][JSON head]);
 *   0x03 end:   the answer is complete (no payload);
 *   0x04 abort: the origin body broke off (payload: a UTF-8 reason).
 * Server → client, emitter events on the same tunnel:
 *   `ha-broker/credit` [streamingID, limit]: the client may have sent up to `limit` payload bytes
 *               in all; it starts with STREAM_WINDOW_BYTES. The server grants more only as the
 *               platform takes the bytes, so a slow platform reader slows the origin read
 *               instead of filling the server's memory. How far ahead it lets the client be is
 *               the server's choice (ours: 4 MiB); the client sends as far as the last limit.
 * Data messages may be of any size up to the server's frame limit (our client sends 16 KiB).
 *   `ha-broker/answer-done` [streamingID, status, message]: the server's verdict, what the
 *               answer to the POST would have been (200: delivered).
 */
export const TUNNEL_STREAMS_CAPABILITY = 'ha-broker/tunnel-streams';
export const STREAM_CREDIT_EVENT = 'ha-broker/credit';
export const STREAM_DONE_EVENT = 'ha-broker/answer-done';
/** Bytes a stream may send before the server's first grant: what both ends assume. */
export const STREAM_WINDOW_BYTES = 1024 * 1024;

export const STREAM_DATA = 0x02;
export const STREAM_END = 0x03;
export const STREAM_ABORT = 0x04;
export type StreamFrameType = typeof STREAM_DATA | typeof STREAM_END | typeof STREAM_ABORT;

export interface StreamFrame {
  type: StreamFrameType;
  streamingID: string;
  payload: Buffer;
}

/** The prefix of every frame of one stream: built once per stream, not per chunk. */
export function streamFramePrefix(type: StreamFrameType, streamingID: string): Buffer {
  return framePrefix(type, streamingID);
}

export function isStreamFrame(frame: Buffer): boolean {
  const t = frame[0];
  return t === STREAM_DATA || t === STREAM_END || t === STREAM_ABORT;
}

export function decodeStreamFrame(frame: Buffer): StreamFrame {
  if (frame.length < 3 || !isStreamFrame(frame)) throw new ProtocolError('BAD_TUNNEL_ANSWER', 'binary tunnel message is not a stream frame');
  const id = frameStreamingID(frame);
  if (!id) throw new ProtocolError('BAD_TUNNEL_ANSWER', 'stream frame ends inside its streamingID');
  return { type: frame[0] as StreamFrameType, streamingID: id.streamingID, payload: frame.subarray(id.end) };
}

/** A credit or done event's arguments, checked (they come from the peer). */
export function parseCredit(args: unknown[]): { streamingID: string; limit: number } | undefined {
  const [streamingID, limit] = args;
  return typeof streamingID === 'string' && typeof limit === 'number' && Number.isSafeInteger(limit) && limit >= 0 ? { streamingID, limit } : undefined;
}

export function parseDone(args: unknown[]): { streamingID: string; status: number; message: string } | undefined {
  const [streamingID, status, message] = args;
  if (typeof streamingID !== 'string' || typeof status !== 'number' || !Number.isInteger(status)) return undefined;
  return { streamingID, status, message: typeof message === 'string' ? message : '' };
}
