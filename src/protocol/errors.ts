/** Errors raised while decoding or encoding tunnel traffic. `code` is stable and safe to log. */
export type ProtocolErrorCode =
  | 'BAD_PACKET'
  | 'BAD_JSON'
  | 'BAD_EJSON'
  | 'BAD_EMITTER_PACKET'
  | 'FRAME_TOO_LARGE'
  | 'ACK_TIMEOUT'
  | 'CHANNEL_CLOSED'
  | 'RESPONSE_HEAD_TRUNCATED'
  | 'RESPONSE_HEAD_TOO_LARGE'
  | 'RESPONSE_HEAD_INVALID'
  | 'BAD_TUNNEL_ANSWER';

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProtocolError';
    this.code = code;
  }
}
