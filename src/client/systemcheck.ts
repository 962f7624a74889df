import type { Egress } from '../http/egress.js';
import { describeError } from '../http/errors.js';
import type { Logger } from '../observability/logger.js';
import { redactUrl } from '../config/env.js';
import type { ClientConfig } from '../config/client.js';
import { toInsecure } from './insecure-downstream.js';

/** `abc***xyz` as the real client shows credentials in /systemcheck. */
export function maskCredential(value: string): string {
  if (value.length <= 6) return '***';
  return `${value.slice(0, 3)}***${value.slice(-3)}`;
}

export interface SystemcheckDeps {
  validation: NonNullable<ClientConfig['validation']>;
  egress: Egress;
  logger: Logger;
  wireVersion: string;
  insecureDownstream: boolean;
}

/**
 * GET /systemcheck as snyk-broker does it: the validation URL is called once per credential (each
 * value of a `*_POOL`, in order; once without credentials when none is set) and each result is
 * reported. The status is 500 when any credential fails (snyk-broker: when the last one does).
 */
export async function runSystemcheck(deps: SystemcheckDeps): Promise<{ ok: boolean; results: Array<Record<string, unknown>> }> {
  const v = deps.validation;
  const url = deps.insecureDownstream ? toInsecure(v.url) : v.url;
  const attempts = v.credentials.length > 0 ? v.credentials : [undefined];
  const results: Array<Record<string, unknown>> = [];
  for (const [i, credential] of attempts.entries()) {
    if (credential) deps.logger.info({ index: i }, 'systemcheck: checking credentials');
    const headers: Record<string, string> = { 'user-agent': `Snyk Broker client ${deps.wireVersion}` };
    if (credential) headers.authorization = credential.authorization;
    const result: Record<string, unknown> = {
      brokerClientValidationUrl: redactUrl(v.url),
      brokerClientValidationMethod: v.method,
      brokerClientValidationTimeoutMs: v.timeoutMs,
    };
    try {
      const r = await deps.egress.request(url, { method: v.method as 'GET', headers, signal: AbortSignal.timeout(v.timeoutMs) });
      await r.body.dump();
      result.brokerClientValidationUrlStatusCode = r.statusCode;
      result.ok = r.statusCode >= 200 && r.statusCode < 300;
      if (!result.ok) result.error = r.statusCode === 401 || r.statusCode === 403 ? 'Failed due to invalid credentials' : `Status code is not 2xx (${r.statusCode})`;
      else if (v.bitbucketPat && r.headers['x-ausername'] === undefined) {
        // snyk-broker's Bitbucket PAT check: the server says 200 whatever the PAT; only this header proves it.
        result.ok = false;
        result.brokerClientValidationUrlStatusCode = 401;
        result.error = 'Bitbucket PAT systemcheck failed, credentials are invalid';
      }
    } catch (err) {
      result.ok = false;
      result.error = describeError(err);
    }
    result.maskedCredentials = credential ? maskCredential(credential.raw) : null;
    if (!result.ok) deps.logger.warn({ index: i, status: result.brokerClientValidationUrlStatusCode, error: result.error }, 'systemcheck failed');
    results.push(result);
  }
  return { ok: results.every((r) => r.ok === true), results };
}
