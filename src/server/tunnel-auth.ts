import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { answerRawFailure, sendFailure } from '../http/server-helpers.js';
import type { Failure } from '../protocol/failures.js';
import type { CredentialValidator, TunnelCredentials } from './credential-validation.js';
import type { ServerMetrics } from './metrics.js';

/** snyk-broker's (Primus') refusal of a handshake: 401, `WWW-Authenticate: Bearer`, `{"error": message}`. */
export const BEARER_CHALLENGE = { 'www-authenticate': 'Bearer' };

export type Admission = { ok: true } | { ok: false; failure: Failure; message: string };

/**
 * The handshake gate of mandatory-auth mode. A new tunnel (a request under /primus/<id>/ without
 * an engine.io `sid`) is validated before engine.io sees it; what the validation said is kept for
 * that request, and the Connection engine.io makes from it picks it up (credentialsOf). Requests
 * of an existing session are not validated again: the session id already ties them to a
 * validated handshake (snyk-broker, through Primus, validates every one of them).
 */
export function createTunnelAuth(validator: CredentialValidator, metrics: ServerMetrics) {
  const admitted = new WeakMap<IncomingMessage, TunnelCredentials>();
  return {
    async admit(req: IncomingMessage, identifier: string): Promise<Admission> {
      const v = await validator.validate('handshake', identifier, req.headers);
      metrics.authChecks.inc({ kind: 'handshake', outcome: v.ok ? 'accepted' : v.failure.reason });
      if (!v.ok) return v;
      admitted.set(req, { brokerClientId: v.brokerClientId, role: v.role, brokerAppClientId: v.brokerAppClientId, credsValidationTime: Date.now() });
      return { ok: true };
    },
    /** The credentials validated for this handshake request (undefined: it was not validated). */
    credentialsOf(req: IncomingMessage): TunnelCredentials | undefined {
      return admitted.get(req);
    },
  };
}

export type TunnelAuth = ReturnType<typeof createTunnelAuth>;

export function refuseHandshake(res: ServerResponse, refusal: { failure: Failure; message: string }): void {
  sendFailure(res, refusal.failure, { error: refusal.message }, BEARER_CHALLENGE);
}

export function refuseUpgrade(socket: Duplex, refusal: { failure: Failure; message: string }): void {
  answerRawFailure(socket, refusal.failure, { error: refusal.message }, BEARER_CHALLENGE);
}
