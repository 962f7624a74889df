import type { Egress } from '../http/egress.js';
import { delay } from '../http/backoff.js';
import { describeError } from '../http/errors.js';
import type { Logger } from '../observability/logger.js';
import { isUuid } from '../protocol/index.js';
import type { ClientConfig } from '../config/client.js';

export type CheckStatus = 'passing' | 'warning' | 'error';

export interface PreflightCheck {
  id: string;
  name: string;
  status: CheckStatus;
  output: string;
}

async function httpCheck(egress: Egress, id: string, name: string, url: string, { retries = 3, retryDelayMs = 500, timeoutMs = 10_000, reachableIsWarning = false } = {}): Promise<PreflightCheck> {
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await egress.request(url, { method: 'GET', signal: AbortSignal.timeout(timeoutMs), headers: { 'user-agent': 'ha-broker preflight' } });
      const text = (await res.body.text()).slice(0, 300);
      const output = `HTTP GET ${url}: ${res.statusCode}, response: ${JSON.stringify(text)}`;
      if (res.statusCode >= 200 && res.statusCode < 300) return { id, name, status: 'passing', output };
      if (res.statusCode === 429 || reachableIsWarning) return { id, name, status: 'warning', output };
      return { id, name, status: 'error', output };
    } catch (err) {
      if (attempt < retries) {
        await delay(retryDelayMs);
        continue;
      }
      return { id, name, status: 'error', output: `HTTP GET ${url} failed: ${describeError(err)}` };
    }
  }
}

function clientUrlCheck(config: ClientConfig): PreflightCheck | undefined {
  if (!config.clientUrl) return undefined;
  const base = { id: 'broker-client-url-validation', name: 'Broker Client URL Validation' };
  const u = new URL(config.clientUrl);
  if (u.hostname === 'localhost' || u.hostname === '127.0.0.1') {
    return { ...base, status: 'warning', output: `BROKER_CLIENT_URL ${config.clientUrl} points at this machine; webhooks from other hosts cannot reach it` };
  }
  return { ...base, status: 'passing', output: `BROKER_CLIENT_URL ${config.clientUrl} is a valid ${u.protocol.slice(0, -1)} URL` };
}

function tokenCheck(config: ClientConfig): PreflightCheck {
  const valid = isUuid(config.token);
  return {
    id: 'broker-token-validation',
    name: 'Broker Token Validation',
    status: valid ? 'passing' : 'error',
    output: valid ? 'BROKER_TOKEN is a UUID' : 'BROKER_TOKEN is not a UUID; Snyk broker tokens are UUIDs',
  };
}

function acceptFileCheck(config: ClientConfig): PreflightCheck {
  return {
    id: 'accept-file-validation',
    name: 'Accept File Validation',
    status: 'passing',
    output: `${config.acceptPath}: ${config.accept.private.length} private and ${config.accept.public.length} public rules`,
  };
}

/**
 * Start-up checks (protocol §7.1): run in parallel, never throw; the results are logged and
 * sent in identify. `broker preflight` runs them alone.
 */
export async function runPreflightChecks(config: ClientConfig, egress: Egress, { retryDelayMs = 500 } = {}): Promise<PreflightCheck[]> {
  // Only the reachability checks wait on the network: they run in parallel, the local ones
  // are plain values; the results keep this order (network first).
  const reachability = [httpCheck(egress, 'broker-server-status', 'Broker Server Healthcheck', `${config.serverUrl}/healthcheck`, { retryDelayMs })];
  if (config.haMode) {
    reachability.push(httpCheck(egress, 'rest-api-status', 'Dispatcher/API Reachability', `${config.dispatcherBaseUrl}/rest/openapi`, { retryDelayMs, reachableIsWarning: true }));
  }
  const local = [clientUrlCheck(config), tokenCheck(config), acceptFileCheck(config)].filter((r): r is PreflightCheck => r !== undefined);
  return [...(await Promise.all(reachability)), ...local];
}

/** A readable summary through the logger: one line overall, one per non-passing check. */
export function logPreflight(logger: Logger, checks: PreflightCheck[]): void {
  const failed = checks.filter((c) => c.status !== 'passing');
  logger.info({ checks: checks.map((c) => `${c.id}: ${c.status}`) }, `preflight checks: ${checks.length - failed.length}/${checks.length} passing`);
  for (const c of failed) logger[c.status === 'error' ? 'error' : 'warn']({ id: c.id, status: c.status, output: c.output }, `preflight check ${c.id} ${c.status === 'error' ? 'failed' : 'warns'}`);
}

/** A plain-text table for `broker preflight` (people read it in a terminal). */
export function formatPreflight(checks: PreflightCheck[]): string {
  const passing = checks.filter((c) => c.status === 'passing').length;
  const width = Math.max(...checks.map((c) => c.id.length), 2);
  const mark = { passing: 'ok  ', warning: 'WARN', error: 'FAIL' } as const;
  const lines = checks.map((c) => `  ${mark[c.status]}  ${c.id.padEnd(width)}  ${c.output}`);
  return `preflight checks: ${passing}/${checks.length} passing\n${lines.join('\n')}\n`;
}
