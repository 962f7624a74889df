import { join } from 'node:path';
import { EnvReader, isOff, type Env } from './env.js';

/**
 * Universal Broker mode (issue 20): one client serves every connection of a Snyk deployment.
 * Snyk's variable names; we always behave as Snyk's GA image (`UNIVERSAL_BROKER_GA=true`) does.
 */
export interface UniversalConfig {
  deploymentId?: string;
  /** OAuth client credentials of the deployment (absent with SKIP_REMOTE_CONFIG). */
  oauth?: { clientId: string; clientSecret: string };
  apiVersion: string;
  /** Snyk's API: OAuth, the connections list, HA allocation, auth renewal (no trailing slash). */
  apiBaseUrl: string;
  /** SKIP_REMOTE_CONFIG: the connections come from this file's CONNECTIONS block, no API calls. */
  connectionsFile?: string;
  /** How often the connections are fetched again while no tunnel is open (Snyk: 60 s). */
  syncIntervalMs: number;
  /** How often each tunnel renews its auth with Snyk's API (Snyk: AUTH_EXPIRATION_OVERRIDE, 10 min). */
  authRenewalMs: number;
  /** A renewal that failed this many times in a row restarts that connection's tunnels. */
  renewalFailuresBeforeRestart: number;
}

/** Snyk's default for the connections list (`?version=`). */
export const DEFAULT_API_VERSION = '2024-02-08~experimental';

/**
 * Whether the process runs in Universal mode. Snyk turns it on for any non-empty value, "false"
 * included (a truthy string); ours reads the value: false/no/0 keep the classic client.
 */
export function universalEnabled(env: Env): boolean {
  return setAndNotOff(env.UNIVERSAL_BROKER_ENABLED);
}

/** Snyk's flags that are on when set at all; ours also honour an explicit false/no/0. */
function setAndNotOff(value: string | undefined): boolean {
  const v = value?.trim();
  return Boolean(v) && !isOff(v);
}

/**
 * Snyk's chain: API_BASE_URL, else BROKER_DISPATCHER_BASE_URL, else BROKER_SERVER_URL with
 * `//broker.` / `//broker2.` made `//api.` (a server URL without either is taken as it is, as
 * Snyk's client does: the credentials go only where the operator pointed the client), else
 * https://api.snyk.io.
 */
export function apiBaseUrlFrom(r: EnvReader): string {
  const explicit = r.raw('API_BASE_URL') ?? r.raw('BROKER_DISPATCHER_BASE_URL');
  if (explicit) return explicit.replace(/\/+$/, '');
  const server = r.raw('BROKER_SERVER_URL');
  // A bad BROKER_SERVER_URL is a problem named after it (collected on the reader), not a TypeError.
  if (server && r.url('BROKER_SERVER_URL', server)) return server.replace('//broker.', '//api.').replace('//broker2.', '//api.').replace(/\/+$/, '');
  return 'https://api.snyk.io';
}

/** Reads the Universal Broker settings; problems are collected on the reader (exit 2 at done()). */
export function readUniversalConfig(r: EnvReader, cwd = process.cwd()): UniversalConfig {
  const skipRemote = setAndNotOff(r.raw('SKIP_REMOTE_CONFIG'));
  const apiBaseUrl = apiBaseUrlFrom(r);
  if (r.raw('API_BASE_URL', 'BROKER_DISPATCHER_BASE_URL')) r.url(r.raw('API_BASE_URL') ? 'API_BASE_URL' : 'BROKER_DISPATCHER_BASE_URL', apiBaseUrl);
  const hint = 'the Universal Broker credentials of the deployment (Snyk: Settings → Broker → deployments), or SKIP_REMOTE_CONFIG=true with a local connections file';
  const deploymentId = skipRemote ? r.raw('DEPLOYMENT_ID') : r.required('DEPLOYMENT_ID', hint);
  const oauth = skipRemote ? undefined : { clientId: r.required('CLIENT_ID', hint), clientSecret: r.required('CLIENT_SECRET', hint) };
  if (deploymentId && !/^[A-Za-z0-9._~-]+$/.test(deploymentId)) r.problem(`DEPLOYMENT_ID must be the deployment's id (a UUID), got ${JSON.stringify(deploymentId)}`);
  return {
    deploymentId,
    oauth,
    apiVersion: r.string('API_VERSION', DEFAULT_API_VERSION),
    apiBaseUrl,
    // Snyk reads config.<SERVICE_ENV>.json from its project root, SERVICE_ENV defaulting to `universal`.
    connectionsFile: skipRemote ? join(cwd, `config.${r.string('SERVICE_ENV', 'universal')}.json`) : undefined,
    syncIntervalMs: r.int('BROKER_CLIENT_SYNC_INTERVAL_MS', 60_000, { min: 100 }),
    authRenewalMs: r.int('AUTH_EXPIRATION_OVERRIDE', 600_000, { min: 100 }),
    renewalFailuresBeforeRestart: 3,
  };
}
