import type { IncomingHttpHeaders } from 'node:http';
import type { ServerAuthConfig } from '../config/server-auth.js';
import type { Egress } from '../http/egress.js';
import { describeError } from '../http/errors.js';
import type { Logger } from '../observability/logger.js';
import { FAILURES, type Failure } from '../protocol/failures.js';
import { maskToken } from '../protocol/index.js';
import { bearerCredentials, jwtAzp } from './bearer.js';

/*
 * Mandatory-auth mode: a Universal Broker client's bearer token is checked by asking a validation
 * endpoint (snyk-broker's server does the same; it never verifies the JWT itself):
 *   POST {base}/hidden/brokers/connections/<identifier>/auth/validate?version=2024-02-08~experimental
 * with the client's `authorization` passed through. Only 201 passes. The bearer is never logged.
 */

export const VALIDATE_VERSION = '2024-02-08~experimental';

/** What a passed validation says about the tunnel (kept on its Connection). */
export interface TunnelCredentials {
  /** x-snyk-broker-client-id at the handshake (the id the endpoint vouched for). */
  readonly brokerClientId: string;
  /** x-snyk-broker-client-role at the handshake ('' when absent, as in snyk-broker). */
  readonly role: string;
  /** The JWT's `azp` (decoded, not verified); answer uploads must carry the same. */
  readonly brokerAppClientId: string;
  /** When the credentials were last validated (ms since epoch): the handshake, then each refresh. */
  credsValidationTime: number;
}

export type Validation =
  | { ok: true; brokerClientId: string; role: string; brokerAppClientId: string }
  | { ok: false; failure: Failure; message: string };

/** The handshake goes to GATEWAY_HOSTNAME; a refresh (the gateway's internal token) to AUTHORIZATION_SERVICE. */
export type ValidationKind = 'handshake' | 'refresh';

export interface CredentialValidatorDeps {
  egress: Egress;
  /** The egress for the handshake validation (GATEWAY_TLS_OPTION_*); default `egress`. */
  gatewayEgress?: Egress;
  logger: Logger;
}

function headerOf(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

// snyk-broker's messages (clients and operators may know them).
export const MISSING_AUTH_MESSAGE = 'Missing required authorization header.';
const INVALID_JWT_MESSAGE = 'Invalid JWT.';
const INVALID_CREDENTIALS_MESSAGE = 'Invalid credentials.';
const UNAVAILABLE_MESSAGE = 'Unable to validate broker client credentials.';

export type CredentialValidator = ReturnType<typeof createCredentialValidator>;

export function createCredentialValidator(config: ServerAuthConfig, deps: CredentialValidatorDeps) {
  const { egress, logger } = deps;
  const gatewayEgress = deps.gatewayEgress ?? egress;

  /**
   * Validates the `authorization` of `headers` for `identifier` (lowercase) and the client id
   * (the handshake's x-snyk-broker-client-id unless given). Never throws; an endpoint that is
   * down or slow fails the validation after validationTimeoutMs.
   */
  async function validate(kind: ValidationKind, identifier: string, headers: IncomingHttpHeaders, clientId?: string): Promise<Validation> {
    const authorization = headerOf(headers, 'authorization');
    const brokerClientId = clientId ?? headerOf(headers, 'x-snyk-broker-client-id');
    const role = headerOf(headers, 'x-snyk-broker-client-role') ?? '';
    const log = { kind, maskedToken: maskToken(identifier), brokerClientId, role };
    if (!authorization || !authorization.toLowerCase().startsWith('bearer') || !brokerClientId) {
      logger.warn(log, 'broker client credentials refused: no bearer authorization or client id');
      return { ok: false, failure: FAILURES.AUTH_REQUIRED, message: MISSING_AUTH_MESSAGE };
    }
    const credentials = bearerCredentials(authorization);
    if (!credentials) {
      logger.warn(log, 'broker client credentials refused: empty bearer token');
      return { ok: false, failure: FAILURES.AUTH_INVALID, message: INVALID_JWT_MESSAGE };
    }
    const base = kind === 'handshake' ? config.gatewayUrl : config.authorizationServiceUrl;
    const url = `${base}/hidden/brokers/connections/${encodeURIComponent(identifier)}/auth/validate?version=${VALIDATE_VERSION}`;
    const requestHeaders: Record<string, string> = { authorization, 'content-type': 'application/vnd.api+json' };
    if (config.gatewayHeader) requestHeaders[config.gatewayHeader.name] = config.gatewayHeader.value;
    const forwardedFor = headerOf(headers, 'x-forwarded-for');
    if (forwardedFor !== undefined) requestHeaders['x-forwarded-for'] = forwardedFor;
    const body = JSON.stringify({ data: { type: 'broker_connection', attributes: { broker_client_id: brokerClientId } } });
    let status: number;
    try {
      const signal = AbortSignal.timeout(config.validationTimeoutMs);
      const res = await (kind === 'handshake' ? gatewayEgress : egress).request(url, { method: 'POST', headers: requestHeaders, body, signal });
      status = res.statusCode;
      await res.body.dump().catch(() => undefined);
    } catch (err) {
      logger.warn({ ...log, error: describeError(err) }, 'broker client credentials could not be validated: validation endpoint unreachable or too slow');
      return { ok: false, failure: FAILURES.AUTH_UNAVAILABLE, message: UNAVAILABLE_MESSAGE };
    }
    if (status !== 201) {
      logger.warn({ ...log, validationStatus: status }, 'broker client credentials refused by the validation endpoint');
      return { ok: false, failure: FAILURES.AUTH_INVALID, message: INVALID_CREDENTIALS_MESSAGE };
    }
    logger.debug(log, 'broker client credentials validated');
    return { ok: true, brokerClientId, role, brokerAppClientId: jwtAzp(credentials) };
  }

  return { validate };
}
