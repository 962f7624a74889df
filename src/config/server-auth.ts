import type { EnvReader } from './env.js';

/**
 * Mandatory-auth mode (Universal Broker clients; snyk-broker's BROKER_SERVER_MANDATORY_AUTH_ENABLED):
 * the server asks a validation endpoint about every tunnel's bearer token, at the handshake and
 * on each auth refresh, and ends tunnels whose last validation is too old.
 */
export interface ServerAuthConfig {
  /** GATEWAY_HOSTNAME: base URL of the handshake validation (`…/hidden/brokers/connections/<id>/auth/validate`). */
  gatewayUrl: string;
  /** AUTHORIZATION_SERVICE: base URL of the refresh validation (default: GATEWAY_HOSTNAME). */
  authorizationServiceUrl: string;
  /** GATEWAY_HEADER_NAME / GATEWAY_HEADER_VALUE: one more header on every validation call. */
  gatewayHeader?: { name: string; value: string };
  /**
   * GATEWAY_TLS_OPTION_NAME=rejectUnauthorized with GATEWAY_TLS_OPTION_VALUE=false: the handshake
   * validation does not verify the gateway's certificate (snyk-broker applies it to that call only).
   */
  gatewayRejectUnauthorized: boolean;
  /** A validation call not answered within this fails (401): a handshake never waits forever. */
  validationTimeoutMs: number;
  /** How often the stale-credential watchdog runs. */
  staleSweepMs: number;
  /** A tunnel whose credentials were last validated this long ago is ended. */
  staleAfterMs: number;
  /** SNYK_INTERNAL_AUTH_CLIENT_ID_HEADER: a header of the refresh request whose value is logged. */
  refreshClientIdHeader?: string;
}

/** snyk-broker's defaults when STALE_CONNECTIONS_CLEANUP_FREQUENCY is unset: sweep every 10 min, end after 65 min. */
export const DEFAULT_STALE_SWEEP_MS = 10 * 60 * 1000;
export const DEFAULT_STALE_AFTER_MS = 65 * 60 * 1000;

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Base URL without trailing slashes; a problem (named after the variable) when it is not an http(s) URL. */
function baseUrl(r: EnvReader, name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return r.url(name, value) ? value.replace(/\/+$/, '') : undefined;
}

/**
 * The mandatory-auth settings, or undefined when the mode is off (every other variable here is
 * then ignored, as snyk-broker does). Problems go to the reader like every server variable.
 */
export function readServerAuth(r: EnvReader): ServerAuthConfig | undefined {
  if (!r.bool('BROKER_SERVER_MANDATORY_AUTH_ENABLED', false)) return undefined;
  const gatewayRaw = r.string('GATEWAY_HOSTNAME');
  if (gatewayRaw === undefined) r.problem('GATEWAY_HOSTNAME is required when BROKER_SERVER_MANDATORY_AUTH_ENABLED is on (the base URL tunnel handshakes are validated against)');
  const gatewayUrl = baseUrl(r, 'GATEWAY_HOSTNAME', gatewayRaw) ?? '';
  const authorizationServiceUrl = baseUrl(r, 'AUTHORIZATION_SERVICE', r.string('AUTHORIZATION_SERVICE')) ?? gatewayUrl;

  const headerName = r.string('GATEWAY_HEADER_NAME');
  if (headerName !== undefined && !HEADER_NAME.test(headerName)) r.problem(`GATEWAY_HEADER_NAME must be an HTTP header name, got ${JSON.stringify(headerName)}`);
  const gatewayHeader = headerName !== undefined ? { name: headerName.toLowerCase(), value: r.string('GATEWAY_HEADER_VALUE', '') } : undefined;

  // snyk-broker passes { [NAME]: VALUE !== 'false' } to Node's TLS options; only rejectUnauthorized means anything for a client call.
  const tlsOption = r.string('GATEWAY_TLS_OPTION_NAME');
  if (tlsOption !== undefined && tlsOption !== 'rejectUnauthorized') r.problem(`GATEWAY_TLS_OPTION_NAME: only rejectUnauthorized is supported, got ${JSON.stringify(tlsOption)}`);
  const gatewayRejectUnauthorized = tlsOption !== 'rejectUnauthorized' || r.string('GATEWAY_TLS_OPTION_VALUE') !== 'false';

  // Its value is logged: never a header that carries credentials.
  const clientIdHeader = r.string('SNYK_INTERNAL_AUTH_CLIENT_ID_HEADER')?.toLowerCase();
  if (clientIdHeader !== undefined && /^(authorization|proxy-authorization|cookie|x-broker-token)$/.test(clientIdHeader)) r.problem(`SNYK_INTERNAL_AUTH_CLIENT_ID_HEADER names a header whose value is logged; ${clientIdHeader} carries credentials`);

  // One variable sets both the sweep interval and the age limit, as in snyk-broker.
  const stale = r.raw('STALE_CONNECTIONS_CLEANUP_FREQUENCY') === undefined ? undefined : r.int('STALE_CONNECTIONS_CLEANUP_FREQUENCY', DEFAULT_STALE_SWEEP_MS, { min: 10, max: 24 * 3600 * 1000 });
  return {
    gatewayUrl,
    authorizationServiceUrl,
    gatewayHeader,
    gatewayRejectUnauthorized,
    validationTimeoutMs: r.int('BROKER_SERVER_AUTH_TIMEOUT_MS', 10_000, { min: 100, max: 600_000 }),
    staleSweepMs: stale ?? DEFAULT_STALE_SWEEP_MS,
    staleAfterMs: stale ?? DEFAULT_STALE_AFTER_MS,
    refreshClientIdHeader: clientIdHeader,
  };
}
