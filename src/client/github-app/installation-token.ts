import { ConfigError } from '../../config/errors.js';
import { GITHUB_APP_LIVE_VARIABLES, type GithubAppConfig } from '../../config/github-app.js';
import { backoffDelay, delay, waitAtMost } from '../../http/backoff.js';
import type { Egress } from '../../http/egress.js';
import { describeError } from '../../http/errors.js';
import type { Logger, SecretScrubber } from '../../observability/logger.js';
import { mintAppJwt } from './app-jwt.js';

/** What GitHub asks of REST calls (media type, API version, a user agent); the caller adds Authorization. */
export const GITHUB_REST_HEADERS: Readonly<Record<string, string>> = { accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', 'user-agent': 'ha-broker' };

/** Why a GitHub App token could not be had; `refused`: GitHub said no (the App, key or installation is wrong), not a network problem. */
export class GithubAppTokenError extends Error {
  readonly code = 'GITHUB_APP_TOKEN_UNAVAILABLE';
  constructor(
    message: string,
    readonly refused = false,
  ) {
    super(message);
    this.name = 'GithubAppTokenError';
  }
}

export interface InstallationTokenOptions {
  app: GithubAppConfig;
  egress: Egress;
  logger: Logger;
  /** Each new token and JWT is scrubbed from the logs before it can be used. */
  scrubber?: SecretScrubber;
  now?: () => number;
  /** One call to GitHub (default 10 s). */
  timeoutMs?: number;
  /** How long a request waits for a usable token before it fails (default 15 s). */
  waitMs?: number;
  /** Retry delays after a failed refresh (default 1 s doubling up to 30 s). */
  retryBaseMs?: number;
  retryCapMs?: number;
}

interface Held {
  value: string;
  expiresAt: number;
  obtainedAt: number;
}

/** The values the accept rules read: `${GHA_ACCESS_TOKEN}` and `${JWT_TOKEN}`. */
export type GithubAppVars = { GHA_ACCESS_TOKEN: string; JWT_TOKEN: string };

/** Refreshed this long before it expires: a quarter of its life, at least 1 s, at most 5 min. */
function refreshAhead(t: Held): number {
  return Math.min(300_000, Math.max(1000, (t.expiresAt - t.obtainedAt) / 4));
}

/** Not sent when it has less than this left (it could expire on its way): a tenth of its life, 0.5 s to 30 s. */
function sendMargin(t: Held): number {
  return Math.min(30_000, Math.max(500, (t.expiresAt - t.obtainedAt) / 10));
}

/**
 * The GitHub App's installation token: fetched with a fresh App JWT
 * (`POST {GITHUB_API}/app/installations/{id}/access_tokens`) through the one egress stack,
 * refreshed ahead of `expires_at` and retried with backoff while the old one is still good.
 * `values()` never hands out a token about to expire: it waits for the refresh, or fails.
 */
export class InstallationTokens {
  /** The rule variables it provides (the relay waits for them only on rules that use them). */
  readonly names: ReadonlySet<string> = new Set(GITHUB_APP_LIVE_VARIABLES);
  readonly #o: InstallationTokenOptions;
  readonly #now: () => number;
  #token: Held | undefined;
  #jwt: Held | undefined;
  #refreshing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  #lastError: GithubAppTokenError | undefined;
  #stopped = false;
  /** Tokens handed out, newest last: old ones stay scrubbed while requests may still log them. */
  readonly #issued: string[] = [];

  constructor(o: InstallationTokenOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  /** The first token; a refusal by GitHub (wrong App ID, key or installation) rejects, a network failure is retried in the background. */
  async start(): Promise<void> {
    await this.#refresh();
    if (this.#lastError?.refused) throw this.#lastError;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** Current values for the rules, each valid for a while yet; waits for a refresh when needed. */
  async values(): Promise<GithubAppVars> {
    const deadline = this.#now() + (this.#o.waitMs ?? 15_000);
    for (;;) {
      const token = this.#usable();
      if (token) return { GHA_ACCESS_TOKEN: token.value, JWT_TOKEN: this.#currentJwt() };
      if (this.#stopped) throw new GithubAppTokenError('the GitHub App token source is stopped');
      const left = deadline - this.#now();
      if (left <= 0) throw new GithubAppTokenError(`no valid GitHub App installation token${this.#lastError ? `: ${this.#lastError.message}` : ' yet'}`, this.#lastError?.refused);
      // Starts a refresh now (not waiting for the backoff) unless one is on its way.
      await waitAtMost(this.#refresh(), left);
      if (!this.#usable() && this.#lastError) {
        // The refresh failed: pause briefly before the next attempt rather than spin.
        await delay(Math.min(left, 500));
      }
    }
  }

  /** For /systemcheck: when the usable token expires (ISO), never the token itself. */
  get expiresAt(): string | undefined {
    const t = this.#usable();
    return t ? new Date(t.expiresAt).toISOString() : undefined;
  }

  #usable(): Held | undefined {
    const t = this.#token;
    return t && t.expiresAt - this.#now() > sendMargin(t) ? t : undefined;
  }

  #currentJwt(): string {
    const now = this.#now();
    // Re-minted a minute before GitHub would refuse it (Snyk's plugin: 10 s).
    if (!this.#jwt || this.#jwt.expiresAt - now < 60_000) {
      const { jwt, expiresAt } = mintAppJwt(this.#o.app.appId, this.#o.app.privateKey, now);
      this.#o.scrubber?.add(jwt);
      this.#jwt = { value: jwt, expiresAt, obtainedAt: now };
    }
    return this.#jwt.value;
  }

  #refresh(): Promise<void> {
    this.#refreshing ??= this.#fetch().finally(() => {
      this.#refreshing = undefined;
      this.#schedule();
    });
    return this.#refreshing;
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    if (this.#stopped) return;
    const t = this.#token;
    const failed = this.#lastError !== undefined && (!t || t.expiresAt - refreshAhead(t) <= this.#now());
    const at = failed ? this.#now() + backoffDelay(this.#failures - 1, { baseMs: this.#o.retryBaseMs ?? 1000, capMs: this.#o.retryCapMs ?? 30_000 }) : t ? t.expiresAt - refreshAhead(t) : this.#now();
    this.#timer = setTimeout(() => void this.#refresh(), Math.max(0, at - this.#now()));
    this.#timer.unref();
  }

  async #fetch(): Promise<void> {
    const { app, egress, logger } = this.#o;
    const started = this.#now();
    try {
      const jwt = this.#currentJwt();
      const r = await egress.request(`${app.apiBaseUrl}/app/installations/${encodeURIComponent(app.installationId)}/access_tokens`, {
        method: 'POST',
        headers: { ...GITHUB_REST_HEADERS, authorization: `Bearer ${jwt}` },
        headersTimeout: this.#o.timeoutMs ?? 10_000,
        bodyTimeout: this.#o.timeoutMs ?? 10_000,
      });
      const text = await r.body.text();
      if (r.statusCode > 299) throw refusal(r.statusCode, text, app);
      const doc = JSON.parse(text) as { token?: unknown; expires_at?: unknown };
      const expiresAt = typeof doc.expires_at === 'string' ? Date.parse(doc.expires_at) : NaN;
      if (typeof doc.token !== 'string' || !doc.token || !Number.isFinite(expiresAt)) throw new GithubAppTokenError('GitHub answered the access token request without a token and expires_at');
      if (expiresAt <= started) throw new GithubAppTokenError(`GitHub handed out a token that expired already (expires_at ${doc.expires_at as string}); is this machine's clock right?`);
      this.#o.scrubber?.add(doc.token);
      this.#remember(doc.token);
      this.#token = { value: doc.token, expiresAt, obtainedAt: started };
      this.#failures = 0;
      this.#lastError = undefined;
      logger.info({ installationId: app.installationId, expiresAt: new Date(expiresAt).toISOString() }, 'GitHub App installation token obtained');
    } catch (err) {
      this.#failures++;
      this.#lastError = err instanceof GithubAppTokenError ? err : new GithubAppTokenError(`the access token request to ${app.apiBaseUrl} failed: ${describeError(err)}`);
      const stillValid = this.#usable() !== undefined;
      logger[stillValid ? 'warn' : 'error']({ installationId: app.installationId, attempt: this.#failures, stillValid, err: this.#lastError.message }, 'GitHub App installation token refresh failed; retrying with backoff');
    }
  }

  #remember(token: string): void {
    this.#issued.push(token);
    // The scrubber keeps a few past tokens (logs of requests that used them), not every one ever.
    if (this.#issued.length > 4) this.#o.scrubber?.remove(this.#issued.shift()!);
  }
}

/** The first token at start: GitHub refusing the App stops the start (exit 2) with what it said. */
export async function startInstallationTokens(tokens: InstallationTokens): Promise<void> {
  try {
    await tokens.start();
  } catch (err) {
    if (err instanceof GithubAppTokenError && err.refused) throw new ConfigError([`GitHub App: ${err.message}`]);
    throw err;
  }
}

/** GitHub's refusal, with what it most likely means. */
function refusal(status: number, body: string, app: GithubAppConfig): GithubAppTokenError {
  let message: string;
  try {
    const said = (JSON.parse(body) as { message?: unknown }).message;
    message = typeof said === 'string' ? said : '';
  } catch {
    message = body.slice(0, 200);
  }
  const hint =
    status === 401
      ? `GitHub refused the App JWT: GITHUB_APP_ID ${app.appId} does not match the key in ${app.privateKeyPath}, or this machine's clock is off`
      : status === 404
        ? `GitHub knows no installation ${app.installationId} of App ${app.appId} (GITHUB_APP_INSTALLATION_ID, GITHUB_APP_ID, GITHUB_API)`
        : `GitHub answered ${status}`;
  // 5xx and 429 are GitHub's trouble: retried, never a reason to stop.
  const refused = status >= 400 && status < 500 && status !== 429 && status !== 408;
  return new GithubAppTokenError(`${hint}${message ? ` (${message})` : ''}`, refused);
}
