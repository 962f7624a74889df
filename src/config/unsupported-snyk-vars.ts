import type { Env } from './env.js';

/**
 * Variables snyk-broker 5.22.14's client reads (its config keys and `process.env` reads) that
 * ha-broker does not implement. Each one set gets one warning at start naming it and saying why,
 * instead of being ignored silently. `ACCEPT_*` rule injection and the variables our client
 * reads are not listed.
 */
export interface UnsupportedVariable {
  /** A variable name, or a prefix ending in `_` that covers a family of names. */
  name: string;
  reason: string;
}

const UNIVERSAL_ONLY = 'read only in Universal Broker mode (UNIVERSAL_BROKER_ENABLED=true); this client runs the classic broker (one token)';
const UNIVERSAL_CONFIG = "Snyk's config-file form of the Universal connection types is not read: ha-broker keeps its own table of them (docs/universal-broker.md)";
const CODE_AGENT = "used only by Snyk's Code Agent (a separate, deprecated image); ha-broker relays Snyk Code with ACCEPT_CODE";
const CRA = "used only by Snyk's Container Registry Agent, a separate image; ha-broker does not replace it";
const WORKLOAD = 'custom workload modules of snyk-broker are not supported';

export const UNSUPPORTED_SNYK_VARIABLES: readonly UnsupportedVariable[] = [
  { name: 'UNIVERSAL_BROKER_ENABLED', reason: 'is false: the classic client runs (snyk-broker runs Universal Broker for any non-empty value, "false" included)' },
  { name: 'UNIVERSAL_BROKER_GA', reason: "not needed: ha-broker's Universal mode always behaves as Snyk's GA image (UNIVERSAL_BROKER_GA=true)" },
  { name: 'BROKER_CLIENT_CONFIG', reason: UNIVERSAL_CONFIG },
  { name: 'BROKER_CLIENT_CONFIGURATION', reason: UNIVERSAL_CONFIG },
  { name: 'BROKER_CLIENT_CONFIGURATION_', reason: UNIVERSAL_CONFIG },
  { name: 'BROKER_DOWNSTREAM_TYPE_', reason: UNIVERSAL_CONFIG },
  { name: 'CLIENT_ID', reason: UNIVERSAL_ONLY },
  { name: 'CLIENT_SECRET', reason: UNIVERSAL_ONLY },
  { name: 'DEPLOYMENT_ID', reason: UNIVERSAL_ONLY },
  { name: 'SKIP_REMOTE_CONFIG', reason: UNIVERSAL_ONLY },
  { name: 'AUTH_EXPIRATION_OVERRIDE', reason: UNIVERSAL_ONLY },
  { name: 'REMOTE_CONFIG_POLLING_MODE', reason: 'not implemented: a Universal client syncs at start, on the server\'s config/reload and while no tunnel is open' },
  { name: 'NO_UNIVERSAL_FILE', reason: 'not needed: the Universal client keeps the connections in memory and writes no config.universal.json' },
  { name: 'SERVICE_ENV', reason: 'read only with SKIP_REMOTE_CONFIG in Universal Broker mode (the CONNECTIONS of config.<SERVICE_ENV>.json); the classic client is configured by environment only' },
  { name: 'GIT_CLIENT_URL', reason: `${CODE_AGENT}; accept rules that name \${GIT_CLIENT_URL} still get its value` },
  { name: 'DISABLE_CODE_AGENT_PREFLIGHT_CHECK', reason: CODE_AGENT },
  { name: 'CR_AGENT_URL', reason: CRA },
  { name: 'CR_TYPE', reason: CRA },
  { name: 'CR_BASE', reason: CRA },
  { name: 'CR_USERNAME', reason: CRA },
  { name: 'CR_PASSWORD', reason: CRA },
  { name: 'CR_TOKEN', reason: CRA },
  { name: 'CR_ROLE_ARN', reason: CRA },
  { name: 'CR_EXTERNAL_ID', reason: CRA },
  { name: 'CR_REGION', reason: CRA },
  { name: 'CRA_COMPATIBLE_TYPES', reason: CRA },
  { name: 'CLIENT_WORKLOAD_MODULE_PATH', reason: WORKLOAD },
  { name: 'CLIENT_WORKLOAD_NAME', reason: WORKLOAD },
  { name: 'REMOTE_WORKLOAD_MODULE_PATH', reason: WORKLOAD },
  { name: 'REMOTE_WORKLOAD_NAME', reason: WORKLOAD },
  { name: 'LOG_INFO_VERBOSE', reason: 'not implemented: origin answer headers are not added to log lines (LOG_LEVEL=debug logs each relayed request)' },
  { name: 'MAX_RETRY', reason: 'not implemented: a refused origin connection is retried 3 times, 500 ms apart; other failures are not retried (a replay could repeat a write)' },
  { name: 'BROKER_WEBSERVER_REQUEST_TIMEOUT', reason: 'not implemented: the local web server allows 600000 ms per request (snyk-broker\'s default)' },
  { name: 'IPV6_CONNECTIVITY_CHECK_ENABLED', reason: 'not needed: there is no IPv6 probe; connections try IPv6 and IPv4 addresses in turn (Node\'s happy eyeballs)' },
  { name: 'BROKER_CLIENT_URL_TLS_TERMINATED', reason: 'not needed: the preflight check does not probe an https BROKER_CLIENT_URL, so there is nothing to skip' },
  { name: 'OTEL_ENDPOINT', reason: 'OpenTelemetry export is not implemented; metrics are served on /metrics (Prometheus)' },
  { name: 'OTEL_EXPORT_INTERVAL_MS', reason: 'OpenTelemetry export is not implemented; metrics are served on /metrics (Prometheus)' },
];

/** What the Universal client reads itself: not warned about in that mode. */
export const UNIVERSAL_MODE_VARIABLES: ReadonlySet<string> = new Set(['UNIVERSAL_BROKER_ENABLED', 'CLIENT_ID', 'CLIENT_SECRET', 'DEPLOYMENT_ID', 'SKIP_REMOTE_CONFIG', 'AUTH_EXPIRATION_OVERRIDE', 'SERVICE_ENV']);

function matches(entry: UnsupportedVariable, name: string): boolean {
  return entry.name.endsWith('_') ? name.startsWith(entry.name) : name === entry.name;
}

/** The unsupported Snyk variables set (non-empty) in `env`, each once, sorted by name. */
export function unsupportedSnykVariables(env: Env): Array<{ variable: string; reason: string }> {
  const out: Array<{ variable: string; reason: string }> = [];
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || value.trim() === '') continue;
    // snyk-broker also reads each variable with a SNYK_ prefix.
    const bare = name.startsWith('SNYK_') ? name.slice(5) : name;
    const entry = UNSUPPORTED_SNYK_VARIABLES.find((e) => matches(e, bare));
    if (entry) out.push({ variable: name, reason: entry.reason });
  }
  return out.sort((a, b) => a.variable.localeCompare(b.variable));
}
