import { randomUUID } from 'node:crypto';
import { EnvReader, LOG_LEVELS, type Env, type LogLevel } from './env.js';
import { ConfigError } from './errors.js';
import { compileRules, FilterError, type AcceptFile, type RuleSet } from '../filters/index.js';
import { loadAccept } from './accept.js';
import { resolveClientEnv, type AcceptSource } from './client-env.js';
import type { ScmType } from './presets.js';
import { VERSION } from '../version.js';
import { checkCaBundle, checkEgressVariables, readTlsFiles, type TlsFiles } from './files.js';
import { readDownstreamOptions, type DownstreamOptions } from './client-downstream.js';
import { validationCredentials, type ValidationCredential } from './validation-credentials.js';

export type TunnelRole = 'primary' | 'secondary';

export interface ClientConfig extends DownstreamOptions {
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
  /** Where the accept rules come from (a preset's template or a file) and whether ACCEPT_* rules are injected. */
  acceptSource: AcceptSource;
  /** BROKER_SCM_TYPE, when a preset is in use. */
  scmType?: ScmType;
  /** The effective environment (preset defaults < ./.env < process environment, `$VAR`s expanded). */
  env: Env;
  /** Things to say once at start (unset variables, dropped defaults, injected rules). */
  startNotes: { level: 'info' | 'warn'; message: string; fields?: Record<string, unknown> }[];
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
    /** Every credential /systemcheck checks (pools: one each), in order. */
    credentials: ValidationCredential[];
    /** BITBUCKET_PAT set: a 2xx proves the credential only with an x-ausername header (Bitbucket answers 200 to a bad PAT). */
    bitbucketPat: boolean;
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
/** Snyk's US broker server, the default of Snyk's images and of ours. */
export const DEFAULT_SERVER_URL = 'https://broker.snyk.io';

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
export async function loadClientConfig(processEnv: Env, opts: { cwd?: string } = {}): Promise<ClientConfig> {
  const resolved = await resolveClientEnv(processEnv, opts.cwd);
  const env = resolved.env;
  const startNotes: ClientConfig['startNotes'] = [];
  if (resolved.scmType) startNotes.push({ level: 'info', message: `SCM preset ${resolved.scmType}: Snyk's accept template and .env defaults`, fields: { scmType: resolved.scmType, accept: resolved.accept.path } });
  if (resolved.scmType === 'github-server-app') {
    startNotes.push({ level: 'warn', message: "github-server-app: Snyk's GitHub App token plugin is not implemented; requests go to GitHub without a credential unless the accept rules carry one" });
  }
  if (resolved.dotenvPath) startNotes.push({ level: 'info', message: 'read variables from .env (the environment wins)', fields: { path: resolved.dotenvPath } });
  for (const d of resolved.droppedDefaults) {
    startNotes.push({ level: 'warn', message: `preset default ${d.name} left unset: it refers to ${d.missing.map((m) => '$' + m).join(', ')}, which ${d.missing.length === 1 ? 'is' : 'are'} not set` });
  }
  const r = new EnvReader(env);
  const token = r.required('BROKER_TOKEN', 'the broker token from Snyk');
  const serverUrlRaw = r.string('BROKER_SERVER_URL', DEFAULT_SERVER_URL);
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
  const downstream = readDownstreamOptions(r);
  const credentials = validationCredentials(env);
  // Checked here (used elsewhere) so a typo stops the start with exit 2 instead of failing later.
  await checkCaBundle(r, 'CA_CERT');
  await checkEgressVariables(r);
  for (const name of ['DISABLE_BODY_VARS_SUBSTITUTION', 'DISABLE_HEADER_VARS_SUBSTITUTION']) r.bool(name, false);
  for (const name of ['BROKER_HEALTHCHECK_PATH', 'BROKER_SYSTEMCHECK_PATH']) {
    const path = r.string(name);
    if (path !== undefined && !path.startsWith('/')) r.problem(`${name} must be a path starting with "/", got ${JSON.stringify(path)}`);
  }
  r.enumOf('BROKER_CLIENT_VALIDATION_METHOD', ['get', 'head', 'post', 'put', 'patch', 'delete', 'options'] as const, 'get');

  const acceptSource = resolved.accept;
  const acceptPath = acceptSource.path;
  const acceptWhere = acceptSource.fromPreset ? `BROKER_SCM_TYPE=${resolved.scmType} accept template` : `ACCEPT file ${acceptPath}`;
  let accept: AcceptFile | undefined;
  try {
    const loaded = await loadAccept(acceptSource, env);
    accept = loaded.accept;
    startNotes.push(...loaded.notes);
  } catch (err) {
    if (err instanceof FilterError) r.problem(`ACCEPT: ${err.message}`);
    else throw err;
  }
  let privateRules: RuleSet | undefined;
  let publicRules: RuleSet | undefined;
  if (accept) {
    for (const side of ['private', 'public'] as const) {
      try {
        const set = compileRules(accept[side], env, `${acceptWhere} (${side} rules)`);
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
  const unset = new Map<string, number>();
  for (const set of [privateRules, publicRules]) for (const u of set.unsetVariables()) unset.set(u.name, (unset.get(u.name) ?? 0) + u.rules);
  if (unset.size > 0) {
    const list = [...unset].map(([name, rules]) => `${name} (${rules} rule${rules === 1 ? '' : 's'})`).join(', ');
    startNotes.push({
      level: 'warn',
      message: `accept rules use unset variables, which become empty as in snyk-broker: ${list}; a request matching a rule whose origin is left empty is answered 502`,
      fields: { unsetVariables: Object.fromEntries(unset) },
    });
  }

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
    ...credentials.flatMap((c) => [c.authorization, c.raw, c.authorization.replace(/^\S+\s+/, '')]),
    // Credentials by name (GITLAB_TOKEN goes in through header substitution, not a rule's origin).
    ...Object.entries(env)
      .filter(([k]) => /(TOKEN|PASSWORD|_PAT|SECRET|BASIC_AUTH)(_POOL)?$/.test(k) && k !== 'BROKER_TOKEN')
      .flatMap(([k, v]) => (k.endsWith('_POOL') ? (v ?? '').split(',').map((x) => x.trim()) : [v ?? '']))
      .filter((v) => v.length >= 4),
  ].filter((s) => s.length > 0);

  return {
    ...downstream,
    token,
    serverUrl: serverUrl!.toString().replace(/\/+$/, ''),
    clientUrl: clientUrl ? clientUrlRaw!.replace(/\/+$/, '') : undefined,
    clientId,
    port,
    tls,
    acceptPath,
    acceptSource,
    scmType: resolved.scmType,
    env,
    startNotes,
    customAccept: !acceptSource.inject,
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
          credentials,
          bitbucketPat: Boolean(r.string('BITBUCKET_PAT')),
          timeoutMs: base.validationTimeoutMs,
        }
      : undefined,
    secrets,
  };
}
