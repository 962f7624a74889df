import { resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { EnvReader, LOG_LEVELS, type Env, type LogLevel } from './env.js';
import { ConfigError } from './errors.js';
import { compileRules, FilterError, loadAcceptFile, type AcceptFile, type RuleSet } from '../filters/index.js';
import { VERSION } from '../version.js';
import { checkCaBundle, checkEgressVariables, readTlsFiles, type TlsFiles } from './files.js';

export type TunnelRole = 'primary' | 'secondary';

export interface ClientConfig {
  token: string;
  /** BROKER_SERVER_URL without a trailing slash. */
  serverUrl: string;
  clientUrl?: string;
  clientId: string;
  port: number;
  host?: string;
  /** HTTPS_CERT / HTTPS_KEY (PEM, already read and checked): serve the local port with TLS. */
  tls?: TlsFiles;
  acceptPath: string;
  /** True when ACCEPT names a file of the user's (not the default accept.json). */
  customAccept: boolean;
  accept: AcceptFile;
  privateRules: RuleSet;
  publicRules: RuleSet;
  haMode: boolean;
  /** HA mode: use a dispatcher's server_url on another host than BROKER_SERVER_URL's (off: the token goes only where configured). */
  trustServerUrl: boolean;
  dispatcherBaseUrl: string;
  dispatcherUrlPrefix: string;
  clientLocation: string;
  apiBaseUrl?: string;
  preflightEnabled: boolean;
  logLevel: LogLevel;
  pingIntervalMs: number;
  pongTimeoutMs: number;
  connectTimeoutMs: number;
  postTimeoutMs: number;
  /** Cap of an answer carried in one ack (SOCKET_MAX_RESPONSE_LENGTH). */
  maxAckResponseBytes: number;
  /** Largest tunnel frame we decode (bigger ones are logged and dropped). */
  maxFrameBytes: number;
  webhookBodyLimit: number;
  webhookTimeoutMs: number;
  drainGraceMs: number;
  healthcheckPath: string;
  systemcheckPath: string;
  removeXForwardedHeaders: boolean;
  /** Small answers go back as one binary frame on the tunnel when our server offers it (never with snyk-broker's server). */
  tunnelAnswers: boolean;
  caFiles: string[];
  rejectUnauthorized: boolean;
  proxy: boolean;
  /** engine.io transport of the tunnels. */
  transport: 'websocket' | 'polling';
  /** Version reported on the wire (identify, headers). */
  wireVersion: string;
  version: string;
  validation?: {
    url: string;
    method: string;
    authorizationHeader?: string;
    basicAuth?: string;
    timeoutMs: number;
  };
  /** Every secret value known at start, for the log scrubber. */
  secrets: string[];
}

/**
 * The version we announce to broker servers. The real server refuses clients below 4.100.0
 * and needs ≥ 4.209.0 for the service channel (semver, `local` exempt); build metadata keeps
 * our own version visible without affecting those comparisons.
 */
export const DEFAULT_WIRE_VERSION = `5.22.14+ha-broker.${VERSION}`;

function userinfoOf(value: string | undefined): string[] {
  if (!value) return [];
  try {
    const u = new URL(value);
    return [decodeURIComponent(u.username), decodeURIComponent(u.password), u.password ? `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}` : ''].filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * Reads the client configuration from the environment (Snyk's variable names) and loads the
 * accept rules. Every problem is collected and thrown as one ConfigError (exit code 2).
 */
export async function loadClientConfig(env: Env): Promise<ClientConfig> {
  const r = new EnvReader(env);
  const token = r.required('BROKER_TOKEN', 'the broker token from Snyk');
  const serverUrlRaw = r.required('BROKER_SERVER_URL', 'e.g. https://broker.snyk.io');
  const serverUrl = r.url('BROKER_SERVER_URL', serverUrlRaw);
  const clientUrlRaw = r.string('BROKER_CLIENT_URL');
  const clientUrl = r.url('BROKER_CLIENT_URL', clientUrlRaw);
  const port = r.port('PORT', 7341);
  const haMode = r.bool('BROKER_HA_MODE_ENABLED', false);
  const trustServerUrl = r.bool('BROKER_CLIENT_TRUST_SERVER_URL', false);
  const apiBaseRaw = r.string('API_BASE_URL');
  const dispatcherRaw = r.string('BROKER_DISPATCHER_BASE_URL');
  r.url('API_BASE_URL', apiBaseRaw);
  r.url('BROKER_DISPATCHER_BASE_URL', dispatcherRaw);
  const logLevel = r.enumOf('LOG_LEVEL', LOG_LEVELS, 'info');
  const validationUrlRaw = r.string('BROKER_CLIENT_VALIDATION_URL');
  r.url('BROKER_CLIENT_VALIDATION_URL', validationUrlRaw);
  const tls = await readTlsFiles(r);
  const clientId = r.string('BROKER_CLIENT_ID') ?? randomUUID();
  if (!/^[A-Za-z0-9._~-]{1,128}$/.test(clientId)) r.problem('BROKER_CLIENT_ID must be 1-128 characters of letters, digits, ".", "_", "~" or "-"');
  const prefix = r.raw('DISPATCHER_URL_PREFIX', 'SNYK_DISPATCHER_URL_PREFIX') ?? '/hidden/broker';
  if (!prefix.startsWith('/')) r.problem(`DISPATCHER_URL_PREFIX must start with "/", got ${JSON.stringify(prefix)}`);

  const base = {
    pingIntervalMs: r.int('SOCKET_PING_INTERVAL', 25_000, { min: 100, max: 600_000 }),
    pongTimeoutMs: r.int('SOCKET_PONG_TIMEOUT', 10_000, { min: 100, max: 600_000 }),
    connectTimeoutMs: r.int('SOCKET_CONNECT_TIMEOUT', 10_000, { min: 100, max: 600_000 }),
    postTimeoutMs: r.int('BROKER_CLIENT_POST_TIMEOUT', 1_200_000, { min: 1000 }),
    maxAckResponseBytes: r.int('SOCKET_MAX_RESPONSE_LENGTH', 20_971_520, { min: 1024 }),
    maxFrameBytes: r.int('BROKER_CLIENT_MAX_FRAME_BYTES', 22_020_096, { min: 1024 }),
    webhookBodyLimit: r.int('BROKER_CLIENT_WEBHOOK_BODY_LIMIT', 10 * 1024 * 1024, { min: 1024 }),
    webhookTimeoutMs: r.int('BROKER_CLIENT_WEBHOOK_TIMEOUT_MS', 120_000, { min: 100 }),
    drainGraceMs: r.int('BROKER_CLIENT_DRAIN_GRACE_MS', 25_000, { min: 0 }),
    preflightEnabled: r.bool('PREFLIGHT_CHECKS_ENABLED', true),
    removeXForwardedHeaders: r.bool('REMOVE_X_FORWARDED_HEADERS', false),
    tunnelAnswers: r.bool('BROKER_CLIENT_TUNNEL_ANSWERS', true),
    validationTimeoutMs: r.int('BROKER_CLIENT_VALIDATION_TIMEOUT_MS', 5000, { min: 100 }),
  };
  const tlsReject = r.string('NODE_TLS_REJECT_UNAUTHORIZED') !== '0';

  const transport = r.enumOf('BROKER_CLIENT_TRANSPORT', ['websocket', 'polling'] as const, 'websocket');
  // Checked here (used elsewhere) so a typo stops the start with exit 2 instead of failing later.
  await checkCaBundle(r, 'CA_CERT');
  await checkEgressVariables(r);
  for (const name of ['DISABLE_BODY_VARS_SUBSTITUTION', 'DISABLE_HEADER_VARS_SUBSTITUTION']) r.bool(name, false);
  for (const name of ['BROKER_HEALTHCHECK_PATH', 'BROKER_SYSTEMCHECK_PATH']) {
    const path = r.string(name);
    if (path !== undefined && !path.startsWith('/')) r.problem(`${name} must be a path starting with "/", got ${JSON.stringify(path)}`);
  }
  r.enumOf('BROKER_CLIENT_VALIDATION_METHOD', ['get', 'head', 'post', 'put', 'patch', 'delete', 'options'] as const, 'get');

  const acceptRaw = r.string('ACCEPT', 'accept.json');
  const acceptPath = resolve(acceptRaw);
  let accept: AcceptFile | undefined;
  try {
    accept = await loadAcceptFile(acceptPath);
  } catch (err) {
    if (err instanceof FilterError) r.problem(`ACCEPT: ${err.message}`);
    else throw err;
  }
  let privateRules: RuleSet | undefined;
  let publicRules: RuleSet | undefined;
  if (accept) {
    for (const side of ['private', 'public'] as const) {
      try {
        const set = compileRules(accept[side], env, `ACCEPT file ${acceptPath} (${side} rules)`);
        if (side === 'private') privateRules = set;
        else publicRules = set;
      } catch (err) {
        if (err instanceof FilterError) r.problem(err.message);
        else throw err;
      }
    }
  }
  r.done();
  if (!privateRules || !publicRules || !accept) throw new ConfigError(['ACCEPT could not be loaded']);

  const dispatcherBaseUrl = (apiBaseRaw ?? dispatcherRaw ?? (/\/\/broker2?\./.test(serverUrlRaw) ? serverUrlRaw.replace(/\/\/broker2?\./, '//api.') : 'https://api.snyk.io')).replace(/\/+$/, '');
  const caFiles = [r.string('CA_CERT')].filter((x): x is string => Boolean(x));
  const httpProxy = r.raw('HTTP_PROXY', 'http_proxy');
  const httpsProxy = r.raw('HTTPS_PROXY', 'https_proxy');
  const validationAuth = r.string('BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER');
  const validationBasic = r.string('BROKER_CLIENT_VALIDATION_BASIC_AUTH');

  const secrets = [
    token,
    ...privateRules.secrets(),
    ...publicRules.secrets(),
    ...userinfoOf(httpProxy),
    ...userinfoOf(httpsProxy),
    ...userinfoOf(validationUrlRaw),
    validationAuth ?? '',
    validationAuth?.replace(/^\S+\s+/, '') ?? '',
    validationBasic ?? '',
    validationBasic ? Buffer.from(validationBasic).toString('base64') : '',
  ].filter((s) => s.length > 0);

  return {
    token,
    serverUrl: serverUrl!.toString().replace(/\/+$/, ''),
    clientUrl: clientUrl ? clientUrlRaw!.replace(/\/+$/, '') : undefined,
    clientId,
    port,
    tls,
    acceptPath,
    customAccept: acceptRaw !== 'accept.json',
    accept,
    privateRules,
    publicRules,
    haMode,
    trustServerUrl,
    dispatcherBaseUrl,
    dispatcherUrlPrefix: prefix.replace(/\/+$/, ''),
    clientLocation: r.string('BROKER_CLIENT_LOCATION', 'snyk-broker-client'),
    apiBaseUrl: apiBaseRaw?.replace(/\/+$/, ''),
    preflightEnabled: base.preflightEnabled,
    logLevel,
    pingIntervalMs: base.pingIntervalMs,
    pongTimeoutMs: base.pongTimeoutMs,
    connectTimeoutMs: base.connectTimeoutMs,
    postTimeoutMs: base.postTimeoutMs,
    maxAckResponseBytes: base.maxAckResponseBytes,
    maxFrameBytes: base.maxFrameBytes,
    webhookBodyLimit: base.webhookBodyLimit,
    webhookTimeoutMs: base.webhookTimeoutMs,
    drainGraceMs: base.drainGraceMs,
    healthcheckPath: r.string('BROKER_HEALTHCHECK_PATH', '/healthcheck'),
    systemcheckPath: r.string('BROKER_SYSTEMCHECK_PATH', '/systemcheck'),
    removeXForwardedHeaders: base.removeXForwardedHeaders,
    tunnelAnswers: base.tunnelAnswers,
    caFiles,
    rejectUnauthorized: tlsReject,
    proxy: Boolean(httpProxy || httpsProxy),
    transport,
    wireVersion: r.string('BROKER_VERSION', DEFAULT_WIRE_VERSION),
    version: VERSION,
    validation: validationUrlRaw
      ? {
          url: validationUrlRaw,
          method: r.string('BROKER_CLIENT_VALIDATION_METHOD', 'GET').toUpperCase(),
          authorizationHeader: validationAuth,
          basicAuth: validationBasic,
          timeoutMs: base.validationTimeoutMs,
        }
      : undefined,
    secrets,
  };
}
