/**
 * Universal Broker: the OAuth bearer every call to Snyk's side carries (the tunnel handshake,
 * answer uploads, allocation, auth renewal). Classic mode has none: the broker token is the
 * only credential there.
 */
export interface PlatformAuth {
  /** `bearer <jwt>`, valid for a while yet (fetched or refreshed as needed). */
  authorization(signal?: AbortSignal): Promise<string>;
  /** A 401 said the token is no good: the next authorization() fetches a new one. */
  invalidate(): void;
}

/** Where Universal Broker clients post answers and renew auth on a broker server (GA). */
export const UNIVERSAL_PATH_PREFIX = '/hidden/brokers';
