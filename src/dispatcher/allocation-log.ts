import type { Logger } from '../observability/logger.js';
import type { AllocationResult } from './allocation-policy.js';
import { tokenLabel } from './types.js';

/**
 * Logs allocation outcomes: grants that change something at info, renewals at debug, and a
 * waiting client's refusal at info once a minute (a waiter asks every ~2 s), else at debug.
 */
export class AllocationLog {
  /** When each waiting client's refusal was last logged at info. */
  readonly #refusalLogged = new Map<string, number>();

  constructor(readonly log: Logger) {}

  outcome(hashedToken: string, clientId: string, result: AllocationResult): void {
    const token = tokenLabel(hashedToken);
    if (result.kind === 'granted') {
      const level = result.created || result.moved ? 'info' : 'debug';
      this.log[level]({ tokenHash: token, clientId, serverId: result.server.id, created: result.created, moved: result.moved }, 'allocation granted');
    } else if (result.kind === 'refused') {
      const key = `${hashedToken} ${clientId}`;
      const last = this.#refusalLogged.get(key);
      const level = last === undefined || Date.now() - last >= 60_000 ? 'info' : 'debug';
      if (level === 'info') {
        if (this.#refusalLogged.size >= 10_000) this.#refusalLogged.clear();
        this.#refusalLogged.set(key, Date.now());
      }
      this.log[level]({ tokenHash: token, clientId, code: result.code, held: result.held, retryAfter: result.retryAfterSeconds }, 'allocation refused; the client waits for a slot');
    }
  }
}
