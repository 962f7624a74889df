import type { ServerPatch, ServerRecord, TokenState } from './types.js';

/** A token's state with the version it was read at (for compare-and-set). */
export interface VersionedTokenState {
  state: TokenState | undefined;
  version: string;
}

/**
 * Where the dispatcher keeps its state. Deliberately dumb: every decision is made by the
 * Allocator in JavaScript, identically for every store; a store only has to make
 * `writeToken` an atomic compare-and-set, so concurrent replicas never both win.
 */
export interface DispatcherStore {
  readonly kind: 'memory' | 'redis';
  /** Applies `set` (creating the record), removes `unset`, and sets `setIfMissing` fields only if absent. */
  patchServer(id: string, set: ServerPatch, unset?: Array<keyof ServerPatch>, setIfMissing?: ServerPatch): Promise<void>;
  getServers(): Promise<ServerRecord[]>;
  deleteServer(id: string): Promise<void>;

  readToken(hashedToken: string): Promise<VersionedTokenState>;
  /** Writes (or deletes, with `undefined`) iff the stored version is still `version`; false on conflict. */
  writeToken(hashedToken: string, version: string, state: TokenState | undefined): Promise<boolean>;
  /** Every hashed token with stored state. */
  listTokens(): Promise<string[]>;

  /** Throws when the backing store is unreachable (for /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class StoreError extends Error {
  readonly code = 'STORE_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}
