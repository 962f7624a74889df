/**
 * INSECURE_DOWNSTREAM (snyk-broker 5.22.14, `switchToInsecure`): every call to an internal
 * system (accept-rule origins and the /systemcheck probe) goes over plain http, whatever scheme
 * the rule or BROKER_CLIENT_VALIDATION_URL names; an explicit port is kept, a default https port
 * becomes the default http port. Hosts whose name contains `.snyk.io` keep their scheme, as in
 * snyk-broker.
 */
export function toInsecure(url: string): string {
  const u = new URL(url);
  if (u.hostname.includes('.snyk.io')) return url;
  u.protocol = 'http:';
  return u.toString();
}

/** Snyk's start-up warning, word for word. */
export const INSECURE_DOWNSTREAM_WARNING = 'Caution! Running in insecure downstream mode, making downstream calls over http, data is not encrypted.';
