/** Classified egress failures; `code` maps to the broker's errorType and HTTP status. */
export type EgressErrorCode = 'DOWNSTREAM_UNREACHABLE' | 'DOWNSTREAM_TIMEOUT' | 'DOWNSTREAM_ERROR';

export class EgressError extends Error {
  readonly code: EgressErrorCode;
  readonly status: number;
  constructor(code: EgressErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EgressError';
    this.code = code;
    this.status = code === 'DOWNSTREAM_TIMEOUT' ? 504 : 502;
  }
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);
const TIMEOUT = new Set(['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ESOCKETTIMEDOUT']);

/** Every `code` along an error's cause chain, outermost first (undici wraps the socket error). */
export function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  let e = err as { code?: unknown; cause?: unknown } | undefined;
  for (let i = 0; e && i < 6; i++) {
    if (typeof e.code === 'string') codes.push(e.code);
    e = e.cause as typeof e;
  }
  return codes;
}

/** The most telling code: a socket-level one when the chain has it, else the innermost. */
function innermostCode(err: unknown): string | undefined {
  const codes = errorCodes(err);
  return codes.find((c) => UNREACHABLE.has(c)) ?? codes[codes.length - 1];
}

/** Maps any error from an outbound call to a typed EgressError. */
export function classifyEgressError(err: unknown): EgressError {
  if (err instanceof EgressError) return err;
  const code = innermostCode(err) ?? '';
  const message = describeError(err);
  if (TIMEOUT.has(code)) return new EgressError('DOWNSTREAM_TIMEOUT', message, { cause: err });
  if (UNREACHABLE.has(code)) return new EgressError('DOWNSTREAM_UNREACHABLE', message, { cause: err });
  return new EgressError('DOWNSTREAM_ERROR', message, { cause: err });
}

/** A one-line description including the cause chain (undici wraps the socket error). */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let e = err as { message?: unknown; cause?: unknown } | undefined;
  for (let i = 0; e && i < 4; i++) {
    if (typeof e.message === 'string' && e.message && !parts.includes(e.message)) parts.push(e.message);
    e = e.cause as typeof e;
  }
  return parts.join(': ') || String(err);
}
