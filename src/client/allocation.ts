import { randomUUID } from 'node:crypto';
import type { Egress } from '../http/egress.js';
import { backoffDelay, delay } from '../http/backoff.js';
import { describeError } from '../http/errors.js';
import type { Logger } from '../observability/logger.js';
import { CLIENT_INSTANCE_HEADER, hashToken } from '../protocol/index.js';
import type { Placement } from './tunnel.js';
import { parseJson } from '../json.js';
import type { PlatformAuth } from './platform-auth.js';

export interface AllocatorOptions {
  egress: Egress;
  logger: Logger;
  token: string;
  clientId: string;
  /** This process among those sharing clientId (rolling updates): sent so a release applies to it alone. */
  instanceId?: string;
  dispatcherBaseUrl: string;
  dispatcherUrlPrefix: string;
  clientLocation: string;
  wireVersion: string;
  /** The server used when the dispatcher does not name a server URL. */
  serverUrl: string;
  /** Use a server_url from the dispatcher even when its host is not BROKER_SERVER_URL's (BROKER_CLIENT_TRUST_SERVER_URL). */
  trustServerUrl?: boolean;
  /** Per-call timeout. */
  timeoutMs?: number;
  backoff?: { baseMs?: number; capMs?: number };
  /** Randomness of the jitter (tests). */
  random?: () => number;
  onOutcome?: (outcome: string) => void;
  /** Universal Broker: the allocation call carries the OAuth bearer (Snyk's API checks it). */
  auth?: PlatformAuth;
}

export class AllocationError extends Error {
  readonly code: 'ALLOCATION_FAILED' | 'ALLOCATION_INVALID';
  readonly retryAfterMs: number | undefined;
  constructor(code: AllocationError['code'], message: string, retryAfterMs?: number) {
    super(message);
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

export const ALLOCATION_API_VERSION = '2022-12-01~experimental';

export function allocationUrl(o: Pick<AllocatorOptions, 'dispatcherBaseUrl' | 'dispatcherUrlPrefix' | 'token' | 'clientId'>): string {
  return `${o.dispatcherBaseUrl}${o.dispatcherUrlPrefix}/${hashToken(o.token)}/connections/${encodeURIComponent(o.clientId)}?version=${encodeURIComponent(ALLOCATION_API_VERSION).replace(/~/g, '%7E')}`;
}

/** Retry-After as seconds or an HTTP date; undefined when absent or unparsable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * The wait a Retry-After asks for, plus up to 10% jitter (so waiting clients do not ask in
 * lockstep), at least 100 ms (a `0` must not become a busy loop) and at most the backoff cap.
 */
export function retryAfterDelay(retryAfterMs: number, capMs = 30_000, random: () => number = Math.random): number {
  const base = Math.min(Math.max(retryAfterMs, 100), capMs);
  return Math.round(base + random() * base * 0.1);
}

/** Reads data.attributes.server_id (string or number) and the optional server_url. */
export function parseAllocation(body: unknown, fallbackServerUrl: string, options: { trustServerUrl?: boolean; onUntrusted?: (serverUrl: string) => void } = {}): Placement {
  const attrs = (body as { data?: { attributes?: Record<string, unknown> } } | null)?.data?.attributes;
  if (!attrs || typeof attrs !== 'object') throw new AllocationError('ALLOCATION_INVALID', 'dispatcher answer has no data.attributes');
  const id = attrs.server_id;
  if (id !== undefined && id !== null && typeof id !== 'string' && typeof id !== 'number') throw new AllocationError('ALLOCATION_INVALID', 'data.attributes.server_id is neither a string nor a number');
  let serverUrl = fallbackServerUrl;
  if (typeof attrs.server_url === 'string' && attrs.server_url) {
    let u: URL;
    try {
      u = new URL(attrs.server_url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
    } catch {
      throw new AllocationError('ALLOCATION_INVALID', 'data.attributes.server_url is not an http(s) URL');
    }
    // The token goes wherever the tunnel goes: only to the host the operator configured, unless told otherwise.
    if (options.trustServerUrl || sameHost(u, fallbackServerUrl)) serverUrl = attrs.server_url.replace(/\/+$/, '');
    else options.onUntrusted?.(u.origin);
  }
  const serverId = (id ?? undefined);
  return serverUrl === fallbackServerUrl ? { serverUrl, serverId } : { serverUrl, serverId, fallbackUrl: fallbackServerUrl };
}

/** Same host name as BROKER_SERVER_URL (the port and scheme may differ: one operator, one name). */
function sameHost(u: URL, configured: string): boolean {
  try {
    return u.hostname.toLowerCase() === new URL(configured).hostname.toLowerCase();
  } catch {
    return false;
  }
}

/** What every call to the dispatcher carries, settled once per allocator. */
interface DispatcherCall {
  o: AllocatorOptions;
  url: string;
  /** The instance header, when there is an instance id. */
  instance: Record<string, string>;
}

/** One allocation request: the placement, or an AllocationError (with Retry-After when the dispatcher sent one). */
async function askDispatcher({ o, url, instance }: DispatcherCall, timeoutMs: number, onUntrusted: (origin: string) => void): Promise<Placement> {
  let res;
  try {
    const auth = o.auth ? { authorization: await o.auth.authorization() } : {};
    res = await o.egress.request(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/vnd.api+json',
        'snyk-request-id': randomUUID(),
        'x-broker-origin-ua': 'not-provided',
        'user-agent': `Snyk Broker Client ${o.wireVersion}`,
        ...instance,
        ...auth,
      },
      body: JSON.stringify({ data: { attributes: { deployment_location: o.clientLocation, broker_token_first_char: o.token.charAt(0) } } }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new AllocationError('ALLOCATION_FAILED', `dispatcher unreachable: ${describeError(err)}`);
  }
  const text = await res.body.text();
  if (res.statusCode === 401) o.auth?.invalidate();
  if (res.statusCode === 429 || res.statusCode >= 300) {
    throw new AllocationError('ALLOCATION_FAILED', `dispatcher answered ${res.statusCode}: ${text.slice(0, 200)}`, parseRetryAfter(res.headers['retry-after']));
  }
  let body: unknown;
  try {
    body = parseJson(text);
  } catch {
    throw new AllocationError('ALLOCATION_INVALID', 'dispatcher answer is not JSON');
  }
  return parseAllocation(body, o.serverUrl, { trustServerUrl: o.trustServerUrl, onUntrusted });
}

/** Asks until the dispatcher places us (or `signal` stops it), waiting between asks. */
async function allocateWithRetry(o: AllocatorOptions, ask: () => Promise<Placement>, signal: AbortSignal): Promise<Placement> {
  const log = o.logger;
  // Only failures without Retry-After grow the backoff: a client told "come back in 2 s"
  // (429 while a slot is taken, 503 while no server is live) must not drift to 30 s,
  // or it misses the slot that frees while it sleeps.
  let errorAttempt = 0;
  for (let asks = 1; ; asks++) {
    if (signal.aborted) throw new AllocationError('ALLOCATION_FAILED', 'stopped');
    try {
      const placement = await ask();
      o.onOutcome?.('allocated');
      log.info({ serverId: placement.serverId }, 'received server id');
      return placement;
    } catch (err) {
      const e = err as AllocationError;
      o.onOutcome?.(e.retryAfterMs !== undefined ? 'throttled' : 'failed');
      const wait = e.retryAfterMs !== undefined ? retryAfterDelay(e.retryAfterMs, o.backoff?.capMs, o.random) : backoffDelay(errorAttempt++, { ...o.backoff, ...(o.random ? { random: o.random } : {}) });
      log.warn({ attempt: asks, delayMs: wait, retryAfterMs: e.retryAfterMs, err: e.message }, 'dispatcher allocation failed; retrying');
      await delay(wait, signal);
    }
  }
}

/** DELETE on the allocation URL; failures only logged (the dispatcher also expires it). */
async function releaseAllocation({ o, url, instance }: DispatcherCall): Promise<void> {
  try {
    const auth = o.auth ? { authorization: await o.auth.authorization() } : {};
    const res = await o.egress.request(url, {
      method: 'DELETE',
      headers: { 'snyk-request-id': randomUUID(), 'user-agent': `Snyk Broker Client ${o.wireVersion}`, ...instance, ...auth },
      signal: AbortSignal.timeout(5000),
    });
    await res.body.dump();
    o.logger.info({ status: res.statusCode }, 'released the dispatcher allocation');
  } catch (err) {
    o.logger.warn({ err: describeError(err) }, 'could not release the dispatcher allocation');
  }
}

/** The warning for a server URL on another host, logged the first time only. */
function untrustedServerWarning(log: Logger): (origin: string) => void {
  let warned = false;
  return (origin) => {
    if (warned) return;
    warned = true;
    log.warn({ serverUrl: origin }, 'the dispatcher named a server URL on another host than BROKER_SERVER_URL; not used (set BROKER_CLIENT_TRUST_SERVER_URL=true to use it): connecting to BROKER_SERVER_URL with server_id');
  };
}

/**
 * HA mode: asks the dispatcher which broker server to use (protocol §6.2). Retries forever with
 * async jittered backoff (never blocking the event loop), honours Retry-After, and releases
 * the allocation with DELETE on stop.
 */
export function createAllocator(o: AllocatorOptions) {
  const log = o.logger;
  const call: DispatcherCall = { o, url: allocationUrl(o), instance: o.instanceId ? { [CLIENT_INSTANCE_HEADER]: o.instanceId } : {} };
  const timeoutMs = o.timeoutMs ?? 10_000;
  const onUntrusted = untrustedServerWarning(log);
  const ask = () => askDispatcher(call, timeoutMs, onUntrusted);
  let current: Placement | undefined;
  let pending: Promise<Placement> | undefined;

  return {
    url: call.url,
    get current(): Placement | undefined {
      return current;
    },
    /** The current placement, asking the dispatcher first if there is none. Concurrent callers share one ask. */
    placement(signal: AbortSignal): Promise<Placement> {
      if (current) return Promise.resolve(current);
      pending ??= allocateWithRetry(o, ask, signal).then(
        (p) => {
          current = p;
          pending = undefined;
          return p;
        },
        (err) => {
          pending = undefined;
          throw err;
        },
      );
      return pending;
    },
    /** Forgets the placement so the next attempt asks again (server drained or unreachable); true: a new placement is (being) asked for. */
    invalidate(reason: string, stale?: Placement): boolean {
      if (stale && current !== stale) return true; // someone already asked again
      if (current) log.info({ serverId: current.serverId, reason }, 'asking the dispatcher for a new server');
      current = undefined;
      return true;
    },
    release(): Promise<void> {
      return releaseAllocation(call);
    },
  };
}

export type Allocator = ReturnType<typeof createAllocator>;
