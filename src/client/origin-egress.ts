import type { Egress } from '../http/egress.js';
import { delay } from '../http/backoff.js';
import { classifyEgressError, errorCodes, EgressError, explainCertificateError, neverConnected } from '../http/errors.js';

/** Origin answers up to this size (by content-length) are read whole: posted in one write. */
const SMALL_ANSWER_BYTES = 64 * 1024;
/**
 * An answer of unknown size (chunked) that ends within this time and within the size above is
 * read whole too; anything slower streams from what arrived, so a slow stream waits at most this.
 */
const UNKNOWN_SIZE_HOLD_MS = 20;

/** What calling an origin needs: the one egress stack and the connect-refusal retry policy. */
export interface OriginCaller {
  readonly egress: Egress;
  /** Origin connect refusals are retried this many times (nothing was sent yet). */
  readonly connectRetries: number;
  readonly connectRetryDelayMs: number;
}

/** The contract's errorType for an origin status (protocol §3.3). */
export function errorTypeForStatus(status: number): string | undefined {
  if (status === 401) return 'DOWNSTREAM_UNAUTHORIZED';
  if (status === 403) return 'DOWNSTREAM_FORBIDDEN';
  if (status === 429) return 'DOWNSTREAM_RATE_LIMITED';
  if (status >= 500) return 'DOWNSTREAM_SERVER_ERROR';
  if (status >= 400 && status !== 404) return 'DOWNSTREAM_UNEXPECTED';
  return undefined;
}

/**
 * The contract's errorType for a failed origin call (protocol §3.3, as the real client maps
 * errnos): refused/unresolvable → DOWNSTREAM_UNREACHABLE, timeouts → DOWNSTREAM_TIMEOUT, anything
 * else — a reset or a socket closed after connecting — → DOWNSTREAM_ERROR.
 */
export function originError(err: unknown, url?: string): EgressError {
  const tls = url === undefined ? undefined : explainCertificateError(err, url, "the accept rule's origin");
  if (tls) return new EgressError('DOWNSTREAM_ERROR', tls.message, { cause: err });
  const e = classifyEgressError(err);
  if (e.code !== 'DOWNSTREAM_UNREACHABLE' || neverConnected(err)) return e;
  return new EgressError('DOWNSTREAM_ERROR', e.message, { cause: err });
}

/** `scheme://authority` of a target URL, before its path: no `/`, `?`, `#`, `\\` or userinfo in it. */
const PLAIN_ORIGIN = /^https?:\/\/[^/?#\\@]+(?=\/)/i;
/**
 * A path and query the URL parser would give back unchanged: printable ASCII that the WHATWG
 * parser neither percent-encodes nor rewrites (no space, quote, `<>`, backtick, `{}`, `\\`,
 * `^`, `|`, fragment), and no `.`/`..` segment, plain or percent-encoded, which it would resolve.
 */
const PLAIN_PATH = /^\/[A-Za-z0-9\-._~!$&()*+,;=:@%/]*(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@%/?]+)?$/;
const DOT_SEGMENT = /\/(?:\.|%2e){1,2}(?=[/?]|$)/i;

/** Origins as the URL parser normalises them (case, default port), by their text in a target. */
const origins = new Map<string, string>();

/**
 * Origin and path of a target URL, as `new URL` would split them. Most targets are a rule's
 * origin and a plain path: then only the origin is parsed, once, and remembered (`new URL` was
 * ~1 % of the client's CPU per request, issue 23). Anything else is parsed whole.
 */
export function splitTarget(target: string): { origin: string; path: string } {
  const m = PLAIN_ORIGIN.exec(target);
  if (m) {
    const path = target.slice(m[0].length);
    if (PLAIN_PATH.test(path) && !DOT_SEGMENT.test(path.split('?', 1)[0])) {
      let origin = origins.get(m[0]);
      if (origin === undefined) {
        origin = new URL(m[0]).origin;
        if (origins.size >= 256) origins.clear();
        origins.set(m[0], origin);
      }
      return { origin, path };
    }
  }
  const url = new URL(target);
  return { origin: url.origin, path: `${url.pathname}${url.search}` };
}

/** Calls the origin at `target`; a failure rejects with the contract's EgressError (originError). */
export async function callOrigin(caller: OriginCaller, target: string, method: string, headers: Record<string, string | string[]>, body: Buffer | string | undefined) {
  const url = splitTarget(target);
  for (let attempt = 0; ; attempt++) {
    try {
      // A small answer (by content-length) comes whole: no response stream per request.
      return await caller.egress.requestAnswer({
        origin: url.origin,
        path: url.path,
        method: method,
        headers,
        body: body === undefined || body.length === 0 ? undefined : body,
        bufferUpTo: SMALL_ANSWER_BYTES,
        holdUnknownMs: UNKNOWN_SIZE_HOLD_MS,
      });
    } catch (err) {
      // Only a refused connection is surely unsent, so only then is a retry safe.
      if (attempt < caller.connectRetries && errorCodes(err).includes('ECONNREFUSED')) {
        await delay(caller.connectRetryDelayMs);
        continue;
      }
      throw originError(err, url.origin);
    }
  }
}
