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

// Network error codes (errno and undici) by what they prove about an outbound call. Every caller
// that decides by them (classification, retries, forwarding to another target) uses these sets.

/** No connection was made (refused, unresolvable, unroutable, connect timeout): nothing was sent. */
const NEVER_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);
/** The connection broke under the call (reset, broken pipe, closed). */
const CONNECTION_BROKEN = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);
/** The socket itself timed out (TCP, or an idle socket). */
const SOCKET_TIMEOUT = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT']);
/** A deadline passed: connecting, the socket, or undici's wait for the answer's head or body. */
const TIMEOUT = new Set([...SOCKET_TIMEOUT, 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
/** Unreachable or dropped at the network level: DOWNSTREAM_UNREACHABLE unless it is a timeout. */
const UNREACHABLE = new Set([...NEVER_CONNECTED, ...CONNECTION_BROKEN]);
/** The connection failed or broke at the network level (not an answer deadline). */
const NETWORK_FAILURE = new Set([...NEVER_CONNECTED, ...CONNECTION_BROKEN, ...SOCKET_TIMEOUT]);

/** Whether the call surely never reached the other side: no connection was ever made. */
export function neverConnected(err: unknown): boolean {
  return errorCodes(err).some((c) => NEVER_CONNECTED.has(c));
}

/**
 * The code of a network-level failure (refused, unresolvable, reset, socket timeout) along the
 * cause chain, else undefined (an HTTP answer, an answer deadline, any other error). A call
 * whose body had not started yet may be made again after one.
 */
export function networkFailureCode(err: unknown): string | undefined {
  return errorCodes(err).find((c) => NETWORK_FAILURE.has(c));
}

/** OpenSSL/Node codes of a peer certificate this process does not accept. */
const UNTRUSTED = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED', 'CERT_REJECTED']);
const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);
const WRONG_NAME = new Set(['ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH']);

/**
 * A certificate failure as a message an operator can act on (which host, OpenSSL's code, which
 * variable fixes it); undefined for any other error. `urlSetting` names where the URL came from.
 */
export function explainCertificateError(err: unknown, url: string, urlSetting: string): { code: string; message: string } | undefined {
  const code = errorCodes(err).find((c) => UNTRUSTED.has(c) || EXPIRED.has(c) || WRONG_NAME.has(c));
  if (code === undefined) return undefined;
  let where = url;
  let host = url;
  try {
    const u = new URL(url);
    where = `${u.protocol}//${u.host}`;
    host = u.hostname;
  } catch {
    // Not a URL: shown as given.
  }
  const why = WRONG_NAME.has(code)
    ? `does not name ${host} (${code}): ${urlSetting} must use a host name the certificate covers`
    : EXPIRED.has(code)
      ? `is expired or not yet valid (${code})`
      : `is not trusted (${code}): set CA_CERT (or NODE_EXTRA_CA_CERTS) to a PEM file with the CA that signed it`;
  return { code, message: `TLS certificate of ${where} ${why}; ${describeError(err)}` };
}

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
