import { randomUUID } from 'node:crypto';
import { EnvReader, LOG_LEVELS, type Env, type LogLevel } from './env.js';
import { ConfigError } from './errors.js';
import type { AcceptFile, RuleSet } from '../filters/index.js';
import { resolveClientEnv, type AcceptSource, type ClientEnv } from './client-env.js';
import type { ScmType } from './presets.js';
import { VERSION } from '../version.js';
import { readTlsFiles, type TlsFiles } from './files.js';
import { readDownstreamOptions, type DownstreamOptions } from './client-downstream.js';
import { validationCredentials, type ValidationCredential } from './validation-credentials.js';
import { normalisedEndpoints, readClientId, readDispatcherPrefix, readEndpoints, type ClientEndpoints } from './client-endpoints.js';
import { readClientTuning, type ClientTuning } from './client-tuning.js';
import { checkLaterVariables } from './client-checks.js';
import { loadClientRules, type ClientRules } from './client-rules.js';
import { clientEnvNotes, unsetVariablesNotes, type StartNote } from './client-notes.js';
import { collectSecrets } from './client-secrets.js';
import { GITHUB_APP_LIVE_VARIABLES, readGithubApp, type GithubAppConfig } from './github-app.js';
import { readCommitSigning, type CommitSigningConfig } from './commit-signing.js';

export type TunnelRole = 'primary' | 'secondary';

export interface ClientConfig extends DownstreamOptions, ClientTuning {
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
  startNotes: StartNote[];
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
  logLevel: LogLevel;
  healthcheckPath: string;
  systemcheckPath: string;
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
  /** GITHUB_APP_*: the rules' `${GHA_ACCESS_TOKEN}` and `${JWT_TOKEN}` come from this App's installation tokens. */
  githubApp?: GithubAppConfig;
  /** GIT_COMMITTER_* and GPG_*: commits made through GitHub's Git Data API are signed with this key. */
  commitSigning?: CommitSigningConfig;
  /** A Universal Broker connection's filter type (its rules get Snyk's Universal additions). */
  universalType?: string;
}

/**
 * The version we announce to broker servers. The real server refuses clients below 4.100.0
 * and needs ≥ 4.209.0 for the service channel (semver, `local` exempt); build metadata keeps
 * our own version visible without affecting those comparisons.
 */
export const DEFAULT_WIRE_VERSION = `5.22.14+ha-broker.${VERSION}`;

/** What the start-time readers found, before the reader is done. */
interface ClientReadings {
  resolved: ClientEnv;
  endpoints: ClientEndpoints;
  logLevel: LogLevel;
  validationUrlRaw?: string;
  tls?: TlsFiles;
  clientId: string;
  prefix: string;
  tuning: ClientTuning;
  validationTimeoutMs: number;
  transport: ClientConfig['transport'];
  downstream: DownstreamOptions;
  credentials: ValidationCredential[];
  rules: ClientRules;
  startNotes: StartNote[];
  githubApp?: GithubAppConfig;
  commitSigning?: CommitSigningConfig;
}

/**
 * Reads the client configuration from the environment (Snyk's variable names) and loads the
 * accept rules. Every problem is collected and thrown as one ConfigError (exit code 2).
 */
export async function loadClientConfig(processEnv: Env, opts: { cwd?: string; universalType?: string } = {}): Promise<ClientConfig> {
  const resolved = await resolveClientEnv(processEnv, opts.cwd);
  const startNotes = clientEnvNotes(resolved);
  // The readers run in this order, which is the order their problems are listed in.
  const r = new EnvReader(resolved.env);
  const endpoints = readEndpoints(r);
  const logLevel = r.enumOf('LOG_LEVEL', LOG_LEVELS, 'info');
  const validationUrlRaw = r.string('BROKER_CLIENT_VALIDATION_URL');
  r.url('BROKER_CLIENT_VALIDATION_URL', validationUrlRaw);
  const tls = await readTlsFiles(r);
  const clientId = readClientId(r, randomUUID);
  const prefix = readDispatcherPrefix(r);
  const tuning = readClientTuning(r);
  const validationTimeoutMs = r.int('BROKER_CLIENT_VALIDATION_TIMEOUT_MS', 5000, { min: 100 });
  const transport = r.enumOf('BROKER_CLIENT_TRANSPORT', ['websocket', 'polling'] as const, 'websocket');
  const downstream = readDownstreamOptions(r);
  const credentials = validationCredentials(resolved.env);
  await checkLaterVariables(r);
  const githubApp = await readGithubApp(r, resolved.scmType);
  const commitSigning = await readCommitSigning(r);
  const rules = await loadClientRules(r, resolved, { githubApp: githubApp !== undefined, commitSigning: commitSigning !== undefined, universalType: opts.universalType });
  r.done();
  if (!rules) throw new ConfigError(['ACCEPT could not be loaded']);
  const provided = new Set<string>(githubApp ? GITHUB_APP_LIVE_VARIABLES : []);
  startNotes.push(...rules.notes, ...unsetVariablesNotes([rules.privateRules, rules.publicRules], provided));
  if (commitSigning) startNotes.push({ level: 'info', message: "commit signing: commits made through GitHub's Git Data API are signed", fields: { keyId: commitSigning.keyId, committer: `${commitSigning.committerName} <${commitSigning.committerEmail}>` } });
  const assembled = assembleClientConfig(r, {
    resolved, endpoints, logLevel, validationUrlRaw, tls, clientId, prefix, tuning,
    validationTimeoutMs, transport, downstream, credentials, rules, startNotes, githubApp, commitSigning,
  });
  return opts.universalType ? { ...assembled, universalType: opts.universalType } : assembled;
}

/** The configuration from what was read; the values left are plain strings that cannot be wrong. */
function assembleClientConfig(r: EnvReader, c: ClientReadings): ClientConfig {
  const { resolved, endpoints, rules } = c;
  const acceptSource = resolved.accept;
  const httpProxy = r.raw('HTTP_PROXY', 'http_proxy');
  const httpsProxy = r.raw('HTTPS_PROXY', 'https_proxy');
  const validationAuth = r.string('BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER');
  const validationBasic = r.string('BROKER_CLIENT_VALIDATION_BASIC_AUTH');
  const secrets = collectSecrets({
    token: endpoints.token,
    ruleSets: [rules.privateRules, rules.publicRules],
    httpProxy,
    httpsProxy,
    validationUrl: c.validationUrlRaw,
    validationAuth,
    validationBasic,
    credentials: c.credentials,
    env: resolved.env,
  });
  return {
    ...c.downstream,
    ...c.tuning,
    ...normalisedEndpoints(endpoints, c.prefix),
    token: endpoints.token,
    clientId: c.clientId,
    port: endpoints.port,
    tls: c.tls,
    acceptPath: acceptSource.path,
    acceptSource,
    scmType: resolved.scmType,
    env: resolved.env,
    startNotes: c.startNotes,
    customAccept: !acceptSource.inject,
    accept: rules.accept,
    privateRules: rules.privateRules,
    publicRules: rules.publicRules,
    haMode: endpoints.haMode,
    trustServerUrl: endpoints.trustServerUrl,
    clientLocation: r.string('BROKER_CLIENT_LOCATION', 'snyk-broker-client'),
    logLevel: c.logLevel,
    healthcheckPath: r.string('BROKER_HEALTHCHECK_PATH', '/healthcheck'),
    systemcheckPath: r.string('BROKER_SYSTEMCHECK_PATH', '/systemcheck'),
    caFiles: [r.string('CA_CERT')].filter((x): x is string => Boolean(x)),
    rejectUnauthorized: r.string('NODE_TLS_REJECT_UNAUTHORIZED') !== '0',
    proxy: Boolean(httpProxy || httpsProxy),
    transport: c.transport,
    wireVersion: r.string('BROKER_VERSION', DEFAULT_WIRE_VERSION),
    version: VERSION,
    validation: c.validationUrlRaw
      ? {
          url: c.validationUrlRaw,
          method: r.string('BROKER_CLIENT_VALIDATION_METHOD', 'GET').toUpperCase(),
          authorizationHeader: validationAuth,
          basicAuth: validationBasic,
          credentials: c.credentials,
          bitbucketPat: Boolean(r.string('BITBUCKET_PAT')),
          timeoutMs: c.validationTimeoutMs,
        }
      : undefined,
    secrets: [...secrets, ...(c.commitSigning?.secrets ?? [])],
    githubApp: c.githubApp,
    commitSigning: c.commitSigning,
  };
}
