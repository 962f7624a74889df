import type { Egress } from '../../http/egress.js';
import { describeError } from '../../http/errors.js';
import type { SecretScrubber } from '../../observability/logger.js';
import { parseJsonOrUndefined } from '../../json.js';
import type { PlatformAuth } from '../platform-auth.js';


/** Why no OAuth token could be had; `refused`: Snyk said the client credentials are wrong (not a network problem). */
export class OAuthTokenError extends Error {
  readonly code = 'OAUTH_TOKEN_UNAVAILABLE';
  constructor(
    message: string,
    readonly refused = false,
  ) {
    super(message);
    this.name = 'OAuthTokenError';
  }
}

export interface OAuthTokenOptions {
  egress: Egress;
  /** Snyk's API (API_BASE_URL): the token endpoint is `{apiBaseUrl}/oauth2/token`. */
  apiBaseUrl: string;
  clientId: string;
  clientSecret: string;
  /** Every new token is scrubbed from the logs before it is used. */
  scrubber?: SecretScrubber;
  now?: () => number;
  /** One call to the token endpoint (default 10 s). */
  timeoutMs?: number;
}

/** Fetched again when it has less than this left, as Snyk's client does (`token.expired(60)`); a quarter of a shorter life. */
function expiryMargin(ttlMs: number): number {
  return Math.min(60_000, ttlMs / 4);
}

/**
 * The deployment's OAuth access token (client credentials grant, `POST /oauth2/token`, form body
 * as Snyk's simple-oauth2 sends it): reused until a minute before it expires, one fetch shared by
 * concurrent callers, and dropped on `invalidate()` (a 401 anywhere), so a stale token is never
 * retried forever (snyk/broker#1141).
 */
export class OAuthToken implements PlatformAuth {
  readonly #o: OAuthTokenOptions;
  readonly #now: () => number;
  #value: string | undefined;
  #refreshAt = 0;
  #expiresAt = 0;
  #fetching: Promise<string> | undefined;
  /** Bumped by invalidate(): a fetch that started before it does not bring the old token back. */
  #generation = 0;
  /** After a failed fetch, none again before this (1 s doubling to 30 s): an outage is not hammered. */
  #retryAt = 0;
  #failures = 0;
  #lastError: Error | undefined;

  constructor(o: OAuthTokenOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  /**
   * The token; a fresh one when it is due. While the token endpoint fails, a token that has not
   * expired yet is still handed out, and callers with none get the last error at once until the
   * next try is due.
   */
  authorization(): Promise<string> {
    const now = this.#now();
    if (this.#value !== undefined && now < this.#refreshAt) return Promise.resolve(this.#value);
    const stillValid = this.#value !== undefined && now < this.#expiresAt ? this.#value : undefined;
    if (now < this.#retryAt) return stillValid !== undefined ? Promise.resolve(stillValid) : Promise.reject(this.#lastError!);
    this.#fetching ??= this.#fetch()
      .then(
        (value) => {
          this.#failures = 0;
          this.#retryAt = 0;
          return value;
        },
        (err: Error) => {
          this.#lastError = err;
          this.#retryAt = this.#now() + Math.min(30_000, 1000 * 2 ** this.#failures++);
          throw err;
        },
      )
      .finally(() => {
        this.#fetching = undefined;
      });
    if (stillValid === undefined) return this.#fetching;
    // The refresh failing leaves the old token: it still works until it expires.
    return this.#fetching.catch(() => (this.#value !== undefined && this.#now() < this.#expiresAt ? this.#value : Promise.reject(this.#lastError!)));
  }

  invalidate(): void {
    this.#value = undefined;
    this.#generation++;
    // A 401 says the token is bad, not the endpoint: the next call may fetch at once.
    this.#retryAt = 0;
  }

  async #fetch(): Promise<string> {
    const generation = this.#generation;
    const o = this.#o;
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: o.clientId, client_secret: o.clientSecret }).toString();
    let res;
    try {
      res = await o.egress.request(`${o.apiBaseUrl}/oauth2/token`, {
        method: 'POST',
        headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
        body,
        signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
      });
    } catch (err) {
      throw new OAuthTokenError(`Snyk's token endpoint ${o.apiBaseUrl}/oauth2/token is unreachable: ${describeError(err)}`);
    }
    const text = await res.body.text();
    const answer = parseJsonOrUndefined(text) as { access_token?: unknown; token_type?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown } | undefined;
    if (res.statusCode === 400 || res.statusCode === 401) {
      const why = typeof answer?.error === 'string' ? `${answer.error}${typeof answer.error_description === 'string' ? `: ${answer.error_description}` : ''}` : `HTTP ${res.statusCode}`;
      throw new OAuthTokenError(`Snyk refused the client credentials (CLIENT_ID / CLIENT_SECRET): ${why}`, true);
    }
    if (res.statusCode !== 200 || typeof answer?.access_token !== 'string' || answer.access_token === '') {
      throw new OAuthTokenError(`Snyk's token endpoint answered ${res.statusCode} without an access token`);
    }
    const type = typeof answer.token_type === 'string' && answer.token_type ? answer.token_type : 'bearer';
    const value = `${type} ${answer.access_token}`;
    o.scrubber?.add(answer.access_token);
    // No expires_in: Snyk's library would keep it forever; an hour bounds the damage.
    const ttlMs = typeof answer.expires_in === 'number' && answer.expires_in > 0 ? answer.expires_in * 1000 : 3_600_000;
    if (generation === this.#generation) {
      this.#value = value;
      this.#refreshAt = this.#now() + ttlMs - expiryMargin(ttlMs);
      this.#expiresAt = this.#now() + ttlMs;
    }
    return value;
  }
}
