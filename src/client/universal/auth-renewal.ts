import { randomUUID } from 'node:crypto';
import type { Egress } from '../../http/egress.js';
import { describeError } from '../../http/errors.js';
import type { Logger } from '../../observability/logger.js';
import { UNIVERSAL_PATH_PREFIX, type PlatformAuth } from '../platform-auth.js';
import type { Tunnel } from '../tunnel.js';

export interface AuthRenewalOptions {
  egress: Egress;
  auth: PlatformAuth;
  logger: Logger;
  apiBaseUrl: string;
  identifier: string;
  clientId: string;
  wireVersion: string;
  intervalMs: number;
  /** Consecutive failures of one tunnel after which onFailed runs (Snyk: 3, then it exits the process). */
  failuresBeforeRestart: number;
  /** The renewals keep failing: restart this connection's tunnels (never the process). */
  onFailed(reason: string): void;
}

/** No OAuth token could be had for a renewal (the token endpoint is down): Snyk's API refused nothing. */
class NoPlatformToken extends Error {}

async function authorization(o: AuthRenewalOptions): Promise<string> {
  try {
    return await o.auth.authorization();
  } catch (err) {
    throw new NoPlatformToken(describeError(err));
  }
}

/** One renewal call; true when Snyk's API took it (2xx). A 401 drops the token and is retried once. */
async function renewOnce(o: AuthRenewalOptions, tunnel: Tunnel): Promise<boolean> {
  const params = new URLSearchParams();
  const serverId = tunnel.placement?.serverId;
  if (serverId) params.set('server_id', String(serverId));
  params.set('connection_role', tunnel.role);
  const url = `${o.apiBaseUrl}${UNIVERSAL_PATH_PREFIX}/connections/${encodeURIComponent(o.identifier)}/auth/refresh?${params.toString()}`;
  const body = JSON.stringify({ data: { type: 'broker_connection', attributes: { broker_client_id: o.clientId } } });
  for (let attempt = 0; attempt < 2; attempt++) {
    const res = await o.egress.request(url, {
      method: 'POST',
      headers: { authorization: await authorization(o), 'content-type': 'application/vnd.api+json', 'user-agent': `Snyk Broker Client ${o.wireVersion}`, 'snyk-request-id': randomUUID() },
      body,
      signal: AbortSignal.timeout(15_000),
    });
    await res.body.dump();
    if (res.statusCode >= 200 && res.statusCode < 300) return true;
    if (res.statusCode !== 401) return false;
    o.auth.invalidate();
  }
  return false;
}

/**
 * Snyk's GA client renews each tunnel's auth with Snyk's API every 10 minutes
 * (`POST /hidden/brokers/connections/{identifier}/auth/refresh`). Snyk's exits the process after
 * three failures in a row, taking every other connection down with it; ours restarts only the
 * tunnels of the connection whose renewals fail. A renewal for which no OAuth token can be had
 * (the token endpoint is down) is skipped, not counted: new tunnels could not handshake either.
 */
export class AuthRenewal {
  readonly #o: AuthRenewalOptions;
  readonly #failures = new Map<Tunnel, number>();
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(
    o: AuthRenewalOptions,
    private readonly tunnels: () => readonly Tunnel[],
  ) {
    this.#o = o;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.renewAll(), this.#o.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One round over the open tunnels (a round still running is not started twice). */
  async renewAll(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      for (const t of this.tunnels()) {
        if (!t.isOpen) continue;
        let ok = false;
        let why = '';
        try {
          ok = await renewOnce(this.#o, t);
          if (!ok) why = "Snyk's API refused the renewal";
        } catch (err) {
          if (err instanceof NoPlatformToken) {
            // New tunnels would need the very token that cannot be had: a restart would only
            // trade open tunnels for ones that cannot handshake. Not a refusal; try next round.
            this.#o.logger.warn({ role: t.role, err: err.message }, 'tunnel auth renewal skipped: no platform token');
            continue;
          }
          why = describeError(err);
        }
        const failures = ok ? 0 : (this.#failures.get(t) ?? 0) + 1;
        this.#failures.set(t, failures);
        if (ok) continue;
        this.#o.logger.warn({ role: t.role, failures, err: why }, 'tunnel auth renewal failed');
        if (failures >= this.#o.failuresBeforeRestart) {
          this.#failures.clear();
          this.#o.onFailed(`auth renewal failed ${failures} times in a row (${why})`);
          return;
        }
      }
    } finally {
      this.#running = false;
    }
  }
}
