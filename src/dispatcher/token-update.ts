import { setTimeout as sleep } from 'node:timers/promises';
import { StoreError, type DispatcherStore } from './store.js';
import { emptyTokenState, isEmptyTokenState, tokenLabel, type TokenState } from './types.js';

const MAX_CAS_ATTEMPTS = 200;

/**
 * Read-modify-CAS loop over a token's whole state, so two replicas sharing a store can never
 * both hand out the last slot. `fn` mutates the state and returns [result, changed]; it may
 * run several times.
 */
export async function updateTokenState<R>(store: DispatcherStore, hashedToken: string, fn: (state: TokenState) => [R, boolean]): Promise<R> {
  for (let attempt = 1; ; attempt++) {
    const { state, version } = await store.readToken(hashedToken);
    const s = state ?? emptyTokenState();
    const [result, changed] = fn(s);
    if (!changed) return result;
    const next = isEmptyTokenState(s) ? undefined : s;
    if (next === undefined && state === undefined) return result;
    if (await store.writeToken(hashedToken, version, next)) return result;
    if (attempt >= MAX_CAS_ATTEMPTS) throw new StoreError(`too much contention on token ${tokenLabel(hashedToken)}`);
    // Another replica won this round; back off a little (jittered) and recompute from fresh state.
    await sleep(Math.random() * Math.min(attempt, 10) * 2);
  }
}
