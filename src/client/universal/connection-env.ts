import type { Env } from '../../config/env.js';
import { allowedContextKeys, COMMON_DEFAULTS, defaultsFor, determineFilterType, universalType, type UniversalTypeName } from '../../config/universal-types.js';
import type { UniversalConfig } from '../../config/universal.js';
import type { ScmType } from '../../config/presets.js';
import type { DeploymentConnection } from './connections-source.js';

/** A connection the client can run: the classic environment its tunnels and rules are built from. */
export interface RunnablePlan {
  name: string;
  type: string;
  /** The type whose rules serve it (a PAT turns jira into jira-bearer-auth). */
  filterType: UniversalTypeName;
  identifier: string;
  /** What the classic config reader gets for this connection (BROKER_TOKEN, BROKER_SCM_TYPE, its values...). */
  env: Env;
  /** Its contexts: the environment with the context's values on top, or why the context is off. */
  contexts: Record<string, { env: Env } | { disabled: string }>;
  /**
   * What the connection is, as the deployment defines it (type, identifier, its values and its
   * contexts', references resolved): a sync rebuilds it only when this changes, not when another
   * connection comes or goes (which changes what the process environment lends it).
   */
  definition?: string;
}

/** A connection that gets no tunnels, with the one log line that says why. */
export interface DisabledPlan {
  name: string;
  type: string;
  disabled: string;
  /** No organisation uses it yet (identifier null): not a problem, just nothing to connect. */
  unused?: boolean;
}

export type ConnectionPlan = RunnablePlan | DisabledPlan;

export function isRunnable(plan: ConnectionPlan): plan is RunnablePlan {
  return !('disabled' in plan);
}

/**
 * Variables of the process that belong to the Universal client, not to a connection: a classic
 * leftover (ACCEPT, BROKER_TOKEN) must not change what a connection's tunnels carry.
 */
const PROCESS_ONLY = new Set(['UNIVERSAL_BROKER_ENABLED', 'UNIVERSAL_BROKER_GA', 'DEPLOYMENT_ID', 'CLIENT_ID', 'CLIENT_SECRET', 'API_VERSION', 'SKIP_REMOTE_CONFIG', 'SERVICE_ENV', 'ACCEPT', 'BROKER_TOKEN', 'BROKER_SCM_TYPE']);

/**
 * Snyk's Universal defaults for the rule injection (its config.default.json turns them on), where
 * they add rules: code and IaC for the SCM types, large manifests for GitHub. ACCEPT_ESSENTIALS
 * and ACCEPT_CUSTOM_PR_TEMPLATES add nothing here (their rules are not in the package): left
 * unset, so no connection warns about a switch the operator never touched.
 */
function universalAcceptDefaults(filterType: UniversalTypeName): Record<string, string> {
  const scm = /^(github|gitlab|bitbucket-server|azure-repos)/.test(filterType);
  return {
    ...(scm ? { ACCEPT_CODE: 'true', ACCEPT_IAC: 'tf,yaml,yml,json,tpl' } : {}),
    ...(filterType.startsWith('github') ? { ACCEPT_LARGE_MANIFESTS: 'true' } : {}),
  };
}

/** Commit signing is for GitHub's Git Data API (as Snyk's): a key, process-wide or the connection's, applies to GitHub connections only. */
const SIGNING_VARIABLES = ['GIT_COMMITTER_NAME', 'GIT_COMMITTER_EMAIL', 'GIT_COMMITER_NAME', 'GIT_COMMITER_EMAIL', 'GPG_PASSPHRASE', 'GPG_PRIVATE_KEY'];

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Replaces `${ENV}` credential references from the process environment; the names that are not set. */
function resolveReferences(value: string, env: Env, missing: Set<string>): string {
  return value.replace(REFERENCE, (_, name: string) => {
    const v = env[name];
    if (v === undefined || v === '') {
      missing.add(name);
      return '';
    }
    return v;
  });
}

/**
 * Every variable the deployment's credential references name. They stay out of each connection's
 * inherited environment: a connection gets its own values resolved, and never another
 * connection's credential (a `x-broker-var-sub` substitution could otherwise send it elsewhere).
 */
export function referencedVariables(conns: readonly DeploymentConnection[]): Set<string> {
  const out = new Set<string>();
  const scan = (v: string) => {
    for (const m of v.matchAll(REFERENCE)) out.add(m[1]);
  };
  for (const c of conns) {
    if (c.identifier) scan(c.identifier);
    for (const v of Object.values(c.values)) scan(v);
    for (const ctx of Object.values(c.contexts)) for (const v of Object.values(ctx)) scan(v);
  }
  return out;
}

/** The classic preset whose rules serve a filter type, or undefined when we have none. */
function presetOf(filterType: UniversalTypeName): ScmType | undefined {
  return universalType(filterType)?.preset;
}

/**
 * What a connection of the deployment becomes: the environment of a classic client for its
 * identifier (its type's defaults, then the process environment, then its own values), or why it
 * gets no tunnels. A missing `${ENV}` disables that connection alone, as Snyk does; unlike Snyk
 * every reference is checked, not only those before the first that is set.
 */
export function planConnection(conn: DeploymentConnection, processEnv: Env, ub: UniversalConfig, processClientId: string, referenced: ReadonlySet<string> = new Set()): ConnectionPlan {
  const base = { name: conn.name, type: conn.type };
  const type = universalType(conn.type);
  if (!type) return { ...base, disabled: `connection type ${JSON.stringify(conn.type)} is not one Snyk's Universal Broker supports` };
  const missing = new Set<string>();
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(conn.values)) values[k] = resolveReferences(v, processEnv, missing);
  const identifier = conn.identifier === null ? null : resolveReferences(conn.identifier, processEnv, missing);
  if (missing.size > 0) return { ...base, disabled: `connection is missing environment variable value ${[...missing].join(', ')}; restart the broker once added` };
  if (!identifier) return { ...base, disabled: 'connection is not in use by any organisation (no identifier): no tunnels', unused: true };
  const filterType = determineFilterType(type.name, values);
  const preset = presetOf(filterType);
  if (!preset) return { ...base, disabled: `ha-broker has no accept rules for connection type ${filterType} yet` };

  const env: Env = {};
  const typeDefaults = defaultsFor(type.name, processEnv.BROKER_CLIENT_URL);
  // The common defaults (BROKER_SERVER_URL...) give way to the process; a type's own defaults do not (Snyk keeps the process out of them).
  for (const [k, v] of Object.entries(typeDefaults)) if (!(k in COMMON_DEFAULTS) || processEnv[k] === undefined) env[k] = v;
  for (const [k, v] of Object.entries(universalAcceptDefaults(filterType))) if (processEnv[k] === undefined) env[k] = v;
  for (const [k, v] of Object.entries(processEnv)) if (v !== undefined && !PROCESS_ONLY.has(k) && !referenced.has(k) && !(k in typeDefaults && !(k in COMMON_DEFAULTS))) env[k] = v;
  Object.assign(env, values);
  if (!filterType.startsWith('github')) for (const k of SIGNING_VARIABLES) delete env[k];
  env.BROKER_TOKEN = identifier;
  env.BROKER_SCM_TYPE = preset;
  // One id per process for every connection, as Snyk's x-snyk-broker-client-id.
  env.BROKER_CLIENT_ID = processClientId;
  // HA allocation goes to Snyk's API under /hidden/brokers (the GA image's prefix), with the bearer.
  env.BROKER_DISPATCHER_BASE_URL = ub.apiBaseUrl;
  env.DISPATCHER_URL_PREFIX = processEnv.DISPATCHER_URL_PREFIX ?? processEnv.SNYK_DISPATCHER_URL_PREFIX ?? '/hidden/brokers';
  const contexts = resolveContexts(conn, type.name, processEnv);
  return { ...base, filterType, identifier, env, contexts: planContexts(contexts, env), definition: definitionOf(filterType, identifier, values, contexts) };
}

/** A context's values, references resolved, keys the type allows only (Snyk drops the others too); `missing`: the unset references. */
interface ResolvedContext {
  values: Env;
  missing: Set<string>;
}

function resolveContexts(conn: DeploymentConnection, type: UniversalTypeName, processEnv: Env): Map<string, ResolvedContext> {
  const allowed = new Set(allowedContextKeys(type));
  const out = new Map<string, ResolvedContext>();
  for (const [id, raw] of Object.entries(conn.contexts)) {
    const missing = new Set<string>();
    const values: Env = {};
    for (const [k, v] of Object.entries(raw)) if (allowed.has(k)) values[k] = resolveReferences(v, processEnv, missing);
    out.set(id, { values, missing });
  }
  return out;
}

/** The connection's own definition, references resolved (a changed credential value is a change), keys sorted. */
function definitionOf(filterType: string, identifier: string, values: Record<string, string>, contexts: ReadonlyMap<string, ResolvedContext>): string {
  const sorted = (o: Record<string, string | undefined>) => Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1));
  const ctx = [...contexts].sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, c]) => [id, sorted(c.values)]);
  return JSON.stringify([filterType, identifier, sorted(values), ctx]);
}

/** Snyk's merge for a request naming a context: the connection's values, then the context's; a context missing a credential reference is off. */
function planContexts(contexts: ReadonlyMap<string, ResolvedContext>, env: Env): RunnablePlan['contexts'] {
  const out: RunnablePlan['contexts'] = {};
  for (const [id, c] of contexts) {
    out[id] = c.missing.size > 0 ? { disabled: `context ${id} is missing environment variable value ${[...c.missing].join(', ')}` } : { env: { ...env, ...c.values } };
  }
  return out;
}
