import { hostname as osHostname } from 'node:os';
import { resolve } from 'node:path';
import { EnvReader, LOG_LEVELS, type Env, type LogLevel } from './env.js';
import { compileRules, FilterError, loadAcceptFile, type RuleSet } from '../filters/index.js';
import { checkEgressVariables, readTlsFiles, type TlsFiles } from './files.js';
import { readServerAuth, type ServerAuthConfig } from './server-auth.js';

export interface ServerConfig {
  port: number;
  /** Interface to bind; undefined = all interfaces (what a pod needs). */
  host?: string;
  /** HTTPS_CERT / HTTPS_KEY (PEM, already read and checked): listen with TLS (https and wss on PORT). */
  tls?: TlsFiles;
  /** Absolute path of the ACCEPT file, when one is configured. */
  acceptPath?: string;
  /** Rules for /broker/<token>/* (undefined: every path is allowed). */
  publicRules?: RuleSet;
  /** Rules for webhooks arriving from clients (undefined: webhooks are refused). */
  privateRules?: RuleSet;
  dispatcherUrl?: string;
  dispatcherVersion: string;
  /** With a dispatcher: send platform requests to peers holding tunnels of the token too. */
  peerRouting: boolean;
  routingRefreshMs: number;
  /** With a dispatcher: server-starting is re-sent this often (0 = only at start). */
  registerIntervalMs: number;
  /** Sent as x-broker-internal-secret on dispatcher calls when set. */
  internalSecret?: string;
  /** This server's id towards the dispatcher (BROKER_SERVER_ID, else the HOSTNAME suffix). */
  serverId: string;
  /** http://<HOSTNAME>/healthcheck, as the real server reports it. */
  healthCheckLink: string;
  /** Where peers (and the dispatcher) reach this server directly. */
  peerUrl: string;
  /**
   * BROKER_SERVER_PUBLIC_URL: where clients reach this very server (a per-pod ingress). Unset:
   * clients connect through their BROKER_SERVER_URL with server_id and are routed here.
   */
  publicUrl?: string;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  /** A tunnel (or peer server) with requests waiting and silent this long is probed. */
  probeDelayMs: number;
  /** A probe unanswered this long: the tunnel (peer) is taken for hung and idempotent requests on it are hedged. */
  probeTimeoutMs: number;
  /** engine.io maxPayload and our frame cap (SOCKET_MAX_RESPONSE_LENGTH). */
  maxFrameBytes: number;
  /** How long a platform request waits for the client's answer to start. */
  requestTimeoutMs: number;
  drainGraceMs: number;
  /** Cap of a platform request body (it travels whole inside one tunnel frame). */
  bodyLimitBytes: number;
  /** Cap of an answer read back from a webhook destination (it travels in one ack). */
  webhookResponseLimitBytes: number;
  webhookTimeoutMs: number;
  /** A tunnel that has not identified within this time is closed. */
  handshakeTimeoutMs: number;
  /** A connection whose request headers take longer than this gets 408 and is closed (slowloris). */
  headersTimeoutMs: number;
  /** Idempotent answers up to this size are held until complete so a dying client's answer can be retried elsewhere. */
  retryBufferBytes: number;
  /** After a tunnel drops, a non-retryable request still waits this long for its answer upload. */
  answerGraceMs: number;
  /** An idempotent request every local connection failed waits this long for the token's client to reconnect. */
  reconnectWaitMs: number;
  minimalSupportedVersion: string;
  minimalRecommendedVersion: string;
  /** BROKER_SERVER_MANDATORY_AUTH_ENABLED: tunnels need a validated bearer token (undefined: off, every tunnel is accepted). */
  mandatoryAuth?: ServerAuthConfig;
  logLevel: LogLevel;
  /** Secrets known at start (rule credentials, the internal secret) for the log scrubber. */
  secrets: string[];
}

export const DEFAULT_SERVER_PORT = 7341;
export const DEFAULT_DISPATCHER_VERSION = '2022-12-02~experimental';

/** `broker-server-2` → `2`; `standalonehost` → `standalonehost` (the real server's rule). */
export function serverIdFromHostname(hostname: string | undefined): string {
  if (!hostname) return '0';
  const i = hostname.lastIndexOf('-');
  return i >= 0 ? hostname.slice(i + 1) : hostname;
}

const SEMVER = /^\d+\.\d+\.\d+$/;

type ServerTuning = Pick<
  ServerConfig,
  | 'pingIntervalMs' | 'pingTimeoutMs' | 'probeDelayMs' | 'probeTimeoutMs' | 'maxFrameBytes' | 'requestTimeoutMs'
  | 'drainGraceMs' | 'bodyLimitBytes' | 'webhookTimeoutMs' | 'handshakeTimeoutMs' | 'headersTimeoutMs'
  | 'answerGraceMs' | 'reconnectWaitMs' | 'retryBufferBytes' | 'minimalSupportedVersion' | 'minimalRecommendedVersion'
>;

/** The server's timings, sizes and client version bounds, checked against each other. */
function readServerTuning(r: EnvReader): ServerTuning {
  const t: ServerTuning = {
    pingIntervalMs: r.int('SOCKET_PING_INTERVAL', 25_000, { min: 100, max: 600_000 }),
    pingTimeoutMs: r.int('SOCKET_PING_TIMEOUT', 20_000, { min: 100, max: 600_000 }),
    probeDelayMs: r.int('BROKER_SERVER_PROBE_DELAY_MS', 300, { min: 50, max: 600_000 }),
    probeTimeoutMs: r.int('BROKER_SERVER_PROBE_TIMEOUT_MS', 600, { min: 50, max: 600_000 }),
    maxFrameBytes: r.int('SOCKET_MAX_RESPONSE_LENGTH', 22_020_096, { min: 1024, max: 1024 * 1024 * 1024 }),
    requestTimeoutMs: r.int('BROKER_SERVER_REQUEST_TIMEOUT_MS', 60_000, { min: 100 }),
    drainGraceMs: r.int('BROKER_SERVER_DRAIN_GRACE_MS', 25_000, { min: 0 }),
    bodyLimitBytes: r.int('BROKER_SERVER_BODY_LIMIT', 10 * 1024 * 1024, { min: 1024 }),
    webhookTimeoutMs: r.int('BROKER_SERVER_WEBHOOK_TIMEOUT_MS', 60_000, { min: 100 }),
    handshakeTimeoutMs: r.int('BROKER_CONNECTION_HANDSHAKE_TTL_MS', 30_000, { min: 100 }),
    headersTimeoutMs: r.int('BROKER_SERVER_HEADERS_TIMEOUT_MS', 60_000, { min: 100, max: 600_000 }),
    answerGraceMs: r.int('BROKER_SERVER_ANSWER_GRACE_MS', 5000, { min: 0, max: 600_000 }),
    reconnectWaitMs: r.int('BROKER_SERVER_RECONNECT_WAIT_MS', 5000, { min: 0, max: 600_000 }),
    retryBufferBytes: r.int('BROKER_SERVER_RETRY_BUFFER_BYTES', 64 * 1024, { min: 0, max: 64 * 1024 * 1024 }),
    minimalSupportedVersion: r.string('MINIMAL_SUPPORTED_BROKER_VERSION', '4.100.0'),
    minimalRecommendedVersion: r.string('MINIMAL_RECOMMENDED_BROKER_VERSION', '4.182.0'),
  };
  for (const [name, v] of [['MINIMAL_SUPPORTED_BROKER_VERSION', t.minimalSupportedVersion], ['MINIMAL_RECOMMENDED_BROKER_VERSION', t.minimalRecommendedVersion]] as const) {
    if (!SEMVER.test(v)) r.problem(`${name} must be a version like 4.100.0, got ${JSON.stringify(v)}`);
  }
  // The body travels base64-encoded inside one tunnel message, next to the headers.
  if (Math.ceil(t.bodyLimitBytes / 3) * 4 + 64 * 1024 > t.maxFrameBytes) {
    r.problem(`BROKER_SERVER_BODY_LIMIT (${t.bodyLimitBytes}) is too large for SOCKET_MAX_RESPONSE_LENGTH (${t.maxFrameBytes}): the body travels base64-encoded inside one tunnel message, so it must stay below about 3/4 of it`);
  }
  return t;
}

type ServerRules = Pick<ServerConfig, 'acceptPath' | 'publicRules' | 'privateRules'>;

/** The ACCEPT file's rules when ACCEPT is set; a problem in them becomes one of the reader's problems. */
async function loadServerRules(r: EnvReader, env: Env): Promise<ServerRules> {
  const acceptRaw = r.string('ACCEPT');
  if (acceptRaw === undefined) return { acceptPath: undefined, publicRules: undefined, privateRules: undefined };
  const acceptPath = resolve(acceptRaw);
  let publicRules: RuleSet | undefined;
  let privateRules: RuleSet | undefined;
  try {
    const accept = await loadAcceptFile(acceptPath);
    publicRules = compileRules(accept.public, env, `ACCEPT file ${acceptPath} (public rules)`);
    privateRules = compileRules(accept.private, env, `ACCEPT file ${acceptPath} (private rules)`);
    // The server keeps refusing unset variables at start (the client follows snyk-broker's
    // empty-string semantics for Snyk's templates; a server's rules are the operator's own).
    const unset = [...new Set([...publicRules.unsetVariables(), ...privateRules.unsetVariables()].map((u) => u.name))];
    if (unset.length > 0) r.problem(`ACCEPT: ACCEPT file ${acceptPath} uses ${unset.map((m) => '${' + m + '}').join(', ')} but ${unset.length === 1 ? 'it is' : 'they are'} not set in the environment`);
  } catch (err) {
    if (err instanceof FilterError) r.problem(`ACCEPT: ${err.message}`);
    else throw err;
  }
  return { acceptPath, publicRules, privateRules };
}

/**
 * Reads the server configuration from the environment (Snyk's names where they exist) and
 * loads ACCEPT when set. Every problem is collected into one ConfigError (exit code 2).
 */
export async function loadServerConfig(env: Env): Promise<ServerConfig> {
  const r = new EnvReader(env);
  const port = r.port('PORT', DEFAULT_SERVER_PORT);
  const host = r.string('BROKER_SERVER_HOST');
  const logLevel = r.enumOf('LOG_LEVEL', LOG_LEVELS, 'info');

  const dispatcherRaw = r.string('DISPATCHER_URL');
  const dispatcherUrl = r.url('DISPATCHER_URL', dispatcherRaw);
  const dispatcherVersion = r.string('DISPATCHER_VERSION', DEFAULT_DISPATCHER_VERSION);
  const internalSecret = r.string('BROKER_INTERNAL_SECRET');
  const peerRouting = r.bool('BROKER_SERVER_PEER_ROUTING', true);
  const routingRefreshMs = r.int('BROKER_SERVER_ROUTING_REFRESH_MS', 2000, { min: 100, max: 600_000 });
  const registerIntervalMs = r.int('BROKER_SERVER_REGISTER_INTERVAL_MS', 15_000, { min: 0, max: 3_600_000 });

  const hostnameEnv = r.string('HOSTNAME');
  const serverId = r.string('BROKER_SERVER_ID') ?? serverIdFromHostname(hostnameEnv);
  if (!/^[A-Za-z0-9._~-]{1,128}$/.test(serverId)) {
    r.problem(`BROKER_SERVER_ID (or the HOSTNAME suffix) must be 1-128 characters of letters, digits, ".", "_", "~" or "-", got ${JSON.stringify(serverId)}`);
  }
  const hostForLinks = hostnameEnv ?? osHostname();
  const tls = await readTlsFiles(r);
  const peerRaw = r.string('BROKER_SERVER_PEER_URL') ?? `${tls ? 'https' : 'http'}://${hostForLinks}:${port}`;
  r.url('BROKER_SERVER_PEER_URL', peerRaw);
  const publicRaw = r.string('BROKER_SERVER_PUBLIC_URL');
  const publicUrl = r.url('BROKER_SERVER_PUBLIC_URL', publicRaw);

  const tuning = readServerTuning(r);
  const mandatoryAuth = readServerAuth(r);
  await checkEgressVariables(r);
  const rules = await loadServerRules(r, env);
  r.done();

  const secrets = [internalSecret ?? '', mandatoryAuth?.gatewayHeader?.value ?? '', ...(rules.publicRules?.secrets() ?? []), ...(rules.privateRules?.secrets() ?? [])].filter((s) => s.length > 0);
  return {
    ...tuning,
    ...rules,
    port,
    host,
    tls,
    dispatcherUrl: dispatcherUrl ? dispatcherRaw!.replace(/\/+$/, '') : undefined,
    dispatcherVersion,
    peerRouting: peerRouting && dispatcherUrl !== undefined,
    routingRefreshMs,
    registerIntervalMs,
    internalSecret,
    serverId,
    healthCheckLink: `http://${hostForLinks}/healthcheck`,
    peerUrl: peerRaw.replace(/\/+$/, ''),
    publicUrl: publicUrl ? publicRaw!.replace(/\/+$/, '') : undefined,
    webhookResponseLimitBytes: tuning.maxFrameBytes,
    mandatoryAuth,
    logLevel,
    secrets,
  };
}
