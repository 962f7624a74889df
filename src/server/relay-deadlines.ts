import { DeadlineQueue } from './deadline-queue.js';
import type { PlatformRelay } from './relay.js';

/**
 * One timer per kind of deadline for all relays, instead of a setTimeout per request: the
 * relay's own (requestTimeoutMs) and the first-bytes hold of an answer (retryBufferMs).
 */
export interface RelayDeadlines {
  relay: DeadlineQueue<PlatformRelay>;
  /** Items are the holds' expiry callbacks; the longest an idempotent answer is held before it is streamed anyway. */
  hold: DeadlineQueue<() => void>;
}

export function createRelayDeadlines(requestTimeoutMs: number, retryBufferMs = DEFAULT_RETRY_BUFFER_MS): RelayDeadlines {
  return {
    relay: new DeadlineQueue<PlatformRelay>(requestTimeoutMs, (relay) => relay.expire()),
    hold: new DeadlineQueue<() => void>(retryBufferMs, (expire) => expire()),
  };
}

export const DEFAULT_RETRY_BUFFER_MS = 200;
