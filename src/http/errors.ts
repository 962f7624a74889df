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

function innermostCode(err: unknown): string | undefined {
  let e = err as { code?: unknown; cause?: unknown } | undefined;
  let code: string | undefined;
  for (let i = 0; e && i < 5; i++) {
    if (typeof e.code === 'string') code = code && UNREACHABLE.has(code) ? code : e.code;
    e = e.cause as typeof e;
  }
  return code;
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
