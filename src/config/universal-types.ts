import type { ScmType } from './presets.js';

/**
 * The Universal Broker connection types our client accepts from Snyk's connections API (issue 20),
 * written from the facts of snyk-broker 5.22.14's `config.default.json` (SUPPORTED_BROKER_TYPES,
 * CRA_COMPATIBLE_TYPES, FILTER_RULES_PATHS, BROKER_CLIENT_CONFIGURATION) and of its dist code that
 * reads them. Snyk ships that file only in its image, not in the npm package, so we keep our own
 * table; test/unit/universal-types.test.ts compares it with Snyk's file and functions.
 * Plain data and tiny functions: no I/O.
 */

/** Snyk's SUPPORTED_BROKER_TYPES, in its order: the types Snyk's client loads accept rules for. */
export const UNIVERSAL_TYPE_NAMES = [
  'apprisk',
  'artifactory',
  'azure-repos',
  'bitbucket-server',
  'bitbucket-server-bearer-auth',
  'github-enterprise',
  'github-server-app',
  'github-cloud-app',
  'github',
  'gitlab',
  'jira-bearer-auth',
  'jira',
  'nexus',
  'docker-hub',
  'ecr',
  'acr',
  'gcr',
  'artifactory-cr',
  'harbor-cr',
  'quay-cr',
  'github-cr',
  'nexus-cr',
  'digitalocean-cr',
  'gitlab-cr',
  'google-artifact-cr',
  'workload',
] as const;
export type UniversalTypeName = (typeof UNIVERSAL_TYPE_NAMES)[number];

/**
 * How a /systemcheck probe authenticates. `header` without `name` means `Authorization`; `basic`
 * sends `Basic base64(username:password)`. With no `auth` at all Snyk takes the URL's userinfo
 * (`user:pass@` → Basic, `token@` → Bearer). Values hold `$VAR` references, expanded per connection.
 */
export type ValidationAuth =
  | { readonly type: 'header'; readonly name?: string; readonly value: string }
  | { readonly type: 'basic'; readonly username: string; readonly password: string };

/** One /systemcheck probe of a connection (Snyk's `validations[]` item); `method` absent means GET. */
export interface Validation {
  readonly url: string;
  readonly method?: string;
  readonly auth?: ValidationAuth;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Readonly<Record<string, string | readonly string[]>>;
}

export interface UniversalType {
  readonly name: UniversalTypeName;
  /** Keys the connection must carry (Snyk's `required` block; the API sends them lower-cased). */
  readonly required: readonly string[];
  /**
   * What Snyk's getConfigForType gives every connection of the type before its own values: the
   * `common` block (default, then required) and then the type's `default` block, values unexpanded.
   * The type's `required` values are examples, never defaults (see defaultsFor for BROKER_CLIENT_URL).
   */
  readonly defaults: Readonly<Record<string, string>>;
  /** The /systemcheck probes; empty where Snyk's block has none (Snyk's CR types lack the key). */
  readonly validations: readonly Validation[];
  /** Our classic preset whose accept rules serve the type; undefined when we have none. */
  readonly preset: ScmType | undefined;
  /** The snyk-broker dist/client-templates/ directory with the type's classic rules, if Snyk ships one. */
  readonly snykTemplate: string | undefined;
  /** The base name of Snyk's FILTER_RULES_PATHS file for the type (defaultFilters/<name>.json). */
  readonly snykFilters: string;
  /** In CRA_COMPATIBLE_TYPES: local /api/v1|v2/ and /v1|v2/ requests may go to its tunnel. */
  readonly craCompatible: boolean;
}

/** The `common` block's defaults: Snyk applies them to every type (an env var of the same name overrides each). */
export const COMMON_DEFAULTS: Readonly<Record<string, string>> = Object.freeze({
  BROKER_SERVER_URL: 'https://broker.snyk.io',
  BROKER_HEALTHCHECK_PATH: '/healthcheck',
});
/** The `common` block's required keys: none in 5.22.14 (Snyk would spread their example values into every type's defaults). */
export const COMMON_REQUIRED: readonly string[] = Object.freeze([]);

type Own = Omit<UniversalType, 'name' | 'craCompatible' | 'snykFilters'> & { snykFilters?: string };

const CLIENT_URL = 'BROKER_CLIENT_URL';
const V_URL = 'BROKER_CLIENT_VALIDATION_URL';
const V_HEADER = 'BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER';
const V_BASIC = 'BROKER_CLIENT_VALIDATION_BASIC_AUTH';
const header = (value: string, name?: string): ValidationAuth => (name === undefined ? { type: 'header', value } : { type: 'header', name, value });
const basic = (username: string, password: string): ValidationAuth => ({ type: 'basic', username, password });

const GIT_TOKEN = { GIT_URL: '$GITHUB', GIT_USERNAME: 'x-access-token', GIT_PASSWORD: '$GITHUB_TOKEN' };
const GHA_TOKEN = { GIT_URL: '$GITHUB', GIT_USERNAME: 'x-access-token', GIT_PASSWORD: '$GHA_ACCESS_TOKEN' };
const GHA_REQUIRED = ['GITHUB', 'GITHUB_API', 'GITHUB_APP_ID', 'GITHUB_APP_PRIVATE_PEM_PATH', 'GITHUB_APP_CLIENT_ID', 'GITHUB_APP_INSTALLATION_ID', CLIENT_URL];
const GHA_VALIDATION: Validation = { url: 'https://$GITHUB_API/installation/repositories?per_page=1&page=1', auth: header('Bearer $GHA_ACCESS_TOKEN', 'Authorization') };
const BITBUCKET_DEFAULTS = { BITBUCKET_GIT: '$BITBUCKET', BITBUCKET_API: '$BITBUCKET/rest/api/1.0', [V_URL]: 'https://$BITBUCKET/rest/api/1.0/projects' };
const JIRA_MYSELF = 'https://$JIRA_HOSTNAME/rest/api/2/myself';

/** The non-container types, in Snyk's words (values exactly as Snyk's, `$VAR`s unexpanded). */
const OWN: Readonly<Record<Exclude<UniversalTypeName, CrTypeName>, Own>> = {
  apprisk: {
    required: ['CHECKMARX', 'CHECKMARX_USERNAME', 'CHECKMARX_PASSWORD', 'SONARQUBE_HOST_URL', 'SONARQUBE_API_TOKEN'],
    // Snyk's defaults name each key after itself: they only make the keys allowed in contexts.
    defaults: { CHECKMARX: '$CHECKMARX', CHECKMARX_USERNAME: '$CHECKMARX_USERNAME', CHECKMARX_PASSWORD: '$CHECKMARX_PASSWORD', SONARQUBE_HOST_URL: '$SONARQUBE_HOST_URL', SONARQUBE_API_TOKEN: '$SONARQUBE_API_TOKEN' },
    validations: [
      {
        url: 'https://$CHECKMARX/cxrestapi/auth/identity/connect/token',
        // The client id and secret Checkmarx documents for its REST token flow: public, not a customer's.
        body: { BROKER_VAR_SUB: ['username', 'password'], username: '$CHECKMARX_USERNAME', password: '$CHECKMARX_PASSWORD', grant_type: 'password', scope: 'sast_rest_api', client_id: 'resource_owner_client', client_secret: '014DF517-39D1-4453-B7B3-9930C563627C' },
        method: 'post',
        headers: { 'x-broker-content-type': 'application/x-www-form-urlencoded' },
      },
      { url: 'https://$SONARQUBE_HOST_URL/system/ping', method: 'GET', auth: header('Bearer $SONARQUBE_API_TOKEN', 'Authorization') },
    ],
    preset: 'apprisk',
    snykTemplate: 'apprisk',
  },
  artifactory: {
    required: ['ARTIFACTORY_URL'],
    defaults: { [V_URL]: 'https://$ARTIFACTORY_URL/api/system/ping' },
    validations: [{ url: 'https://$ARTIFACTORY_URL/api/system/ping' }],
    preset: 'artifactory',
    snykTemplate: 'artifactory',
  },
  'azure-repos': {
    required: ['AZURE_REPOS_TOKEN', 'AZURE_REPOS_ORG', CLIENT_URL],
    defaults: {
      [V_URL]: 'https://$AZURE_REPOS_HOST/$AZURE_REPOS_ORG/_apis/git/repositories',
      [V_BASIC]: 'PAT:$AZURE_REPOS_TOKEN',
      GIT_URL: '$AZURE_REPOS_HOST/$AZURE_REPOS_ORG',
      GIT_USERNAME: 'PAT',
      GIT_PASSWORD: '$AZURE_REPOS_TOKEN',
      AZURE_REPOS_HOST: 'dev.azure.com',
      AZURE_REPOS_USER_ENTITLEMENTS_HOST: 'vsaex.$AZURE_REPOS_HOST',
    },
    validations: [{ url: 'https://$AZURE_REPOS_HOST/$AZURE_REPOS_ORG/_apis/git/repositories', auth: basic('PAT', '$AZURE_REPOS_TOKEN') }],
    preset: 'azure-repos',
    snykTemplate: 'azure-repos',
  },
  'bitbucket-server': {
    required: ['BITBUCKET_USERNAME', 'BITBUCKET_PASSWORD', 'BITBUCKET', CLIENT_URL],
    defaults: { ...BITBUCKET_DEFAULTS, [V_BASIC]: '$BITBUCKET_USERNAME:$BITBUCKET_PASSWORD', GIT_URL: '$BITBUCKET', GIT_USERNAME: '$BITBUCKET_USERNAME', GIT_PASSWORD: '$BITBUCKET_PASSWORD' },
    validations: [{ url: 'https://$BITBUCKET/rest/api/1.0/projects', auth: basic('$BITBUCKET_USERNAME', '$BITBUCKET_PASSWORD') }],
    preset: 'bitbucket-server',
    snykTemplate: 'bitbucket-server',
  },
  'bitbucket-server-bearer-auth': {
    required: ['BITBUCKET_PAT', 'BITBUCKET', CLIENT_URL],
    defaults: { ...BITBUCKET_DEFAULTS, [V_HEADER]: 'Bearer $BITBUCKET_PAT', GIT_URL: '$BITBUCKET', GIT_USERNAME: 'x-access-token', GIT_PASSWORD: '$BITBUCKET_PAT' },
    validations: [{ url: 'https://$BITBUCKET/rest/api/1.0/projects', auth: header('Bearer $BITBUCKET_PAT', 'Authorization') }],
    preset: 'bitbucket-server-bearer-auth',
    snykTemplate: 'bitbucket-server-bearer-auth',
  },
  'github-enterprise': {
    required: ['GITHUB_TOKEN', 'GITHUB', CLIENT_URL],
    defaults: { GITHUB_API: '$GITHUB/api/v3', GITHUB_GRAPHQL: '$GITHUB/api', [V_URL]: 'https://$GITHUB_API/user', [V_HEADER]: 'token $GITHUB_TOKEN', ...GIT_TOKEN },
    validations: [{ url: 'https://$GITHUB_API/user', auth: header('token $GITHUB_TOKEN', 'Authorization') }],
    preset: 'github-enterprise',
    snykTemplate: 'github-enterprise',
  },
  // The App types' BROKER_CLIENT_VALIDATION_* defaults (/user, `bearer`) are not what /systemcheck
  // uses: validations[] probes /installation/repositories with `Bearer`.
  'github-server-app': {
    required: GHA_REQUIRED,
    defaults: { GITHUB_API: '$GITHUB/api/v3', GITHUB_GRAPHQL: '$GITHUB/api', [V_URL]: 'https://$GITHUB_API/user', [V_HEADER]: 'bearer $GHA_ACCESS_TOKEN', ...GHA_TOKEN },
    validations: [GHA_VALIDATION],
    preset: 'github-server-app',
    snykTemplate: 'github-server-app',
  },
  // No GITHUB default: github.com is only the example value of the required GITHUB.
  'github-cloud-app': {
    required: GHA_REQUIRED,
    defaults: { GITHUB_API: 'api.github.com', GITHUB_GRAPHQL: '$GITHUB_API', [V_URL]: 'https://$GITHUB_API/user', [V_HEADER]: 'bearer $GHA_ACCESS_TOKEN', ...GHA_TOKEN },
    validations: [GHA_VALIDATION],
    preset: 'github-cloud-app',
    snykTemplate: undefined, // Snyk ships no classic template; our build derives the preset from github-server-app's.
  },
  github: {
    required: ['GITHUB_TOKEN', CLIENT_URL],
    defaults: { GITHUB: 'github.com', GITHUB_RAW: 'raw.githubusercontent.com', GITHUB_API: 'api.github.com', GITHUB_GRAPHQL: 'api.github.com', [V_URL]: 'https://$GITHUB_API/user', [V_HEADER]: 'token $GITHUB_TOKEN', ...GIT_TOKEN },
    validations: [{ url: 'https://$GITHUB_API/user', auth: header('token $GITHUB_TOKEN') }],
    preset: 'github-com',
    snykTemplate: 'github-com',
  },
  // Snyk probes GitLab's API v3 (gone since GitLab 11) with a `private_token` header.
  gitlab: {
    required: ['GITLAB_TOKEN', 'GITLAB', CLIENT_URL],
    defaults: { [V_URL]: 'https://$GITLAB/api/v3/user?private_token=$GITLAB_TOKEN', GIT_URL: '$GITLAB', GIT_USERNAME: 'oauth2', GIT_PASSWORD: '$GITLAB_TOKEN', REMOVE_X_FORWARDED_HEADERS: 'true' },
    validations: [{ url: 'https://$GITLAB/api/v3/user', auth: header('$GITLAB_TOKEN', 'private_token') }],
    preset: 'gitlab',
    snykTemplate: 'gitlab',
  },
  'jira-bearer-auth': {
    required: ['JIRA_PAT', 'JIRA_HOSTNAME'],
    defaults: { [V_URL]: JIRA_MYSELF, [V_HEADER]: 'Bearer $JIRA_PAT' },
    validations: [{ url: JIRA_MYSELF, auth: header('Bearer $JIRA_PAT', 'Authorization') }],
    preset: 'jira-bearer-auth',
    snykTemplate: 'jira-bearer-auth',
  },
  jira: {
    required: ['JIRA_USERNAME', 'JIRA_PASSWORD', 'JIRA_HOSTNAME'],
    defaults: { [V_URL]: JIRA_MYSELF, [V_BASIC]: '$JIRA_USERNAME:$JIRA_PASSWORD' },
    validations: [{ url: JIRA_MYSELF, auth: basic('$JIRA_USERNAME', '$JIRA_PASSWORD') }],
    preset: 'jira',
    snykTemplate: 'jira',
  },
  // BASE_NEXUS_URL holds scheme and credentials, yet the probe prefixes https:// and sends
  // $NEXUS_USERNAME/$NEXUS_PASSWORD, which no nexus connection defines.
  nexus: {
    required: ['BASE_NEXUS_URL'],
    defaults: { NEXUS_URL: '$BASE_NEXUS_URL/repository', [V_URL]: '$BASE_NEXUS_URL/service/rest/v1/status/check', REMOVE_X_FORWARDED_HEADERS: 'true' },
    validations: [{ url: 'https://$BASE_NEXUS_URL/service/rest/v1/status/check/api/system/ping', auth: basic('$NEXUS_USERNAME', '$NEXUS_PASSWORD') }],
    preset: 'nexus',
    snykTemplate: 'nexus',
    snykFilters: 'nexus-and-nexus2',
  },
  workload: { required: ['WORKLOAD_INTERNAL_URI'], defaults: {}, validations: [], preset: undefined, snykTemplate: undefined },
};

/** Snyk's CRA_COMPATIBLE_TYPES: the container registries, all served through Snyk's Container Registry Agent. */
const CR_TYPES = ['docker-hub', 'ecr', 'acr', 'gcr', 'artifactory-cr', 'harbor-cr', 'quay-cr', 'github-cr', 'nexus-cr', 'digitalocean-cr', 'gitlab-cr', 'google-artifact-cr'] as const;
type CrTypeName = (typeof CR_TYPES)[number];
/** Every container-registry type has the same block: the agent's URL and the client's. */
const CR_OWN: Own = { required: ['CR_AGENT_URL', CLIENT_URL], defaults: {}, validations: [], preset: undefined, snykTemplate: 'container-registry-agent', snykFilters: 'container-registry-agent' };

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function build(name: UniversalTypeName): UniversalType {
  const craCompatible = (CR_TYPES as readonly string[]).includes(name);
  const own = craCompatible ? CR_OWN : OWN[name as Exclude<UniversalTypeName, CrTypeName>];
  const defaults = { ...COMMON_DEFAULTS, ...own.defaults };
  return { ...own, name, defaults, snykFilters: own.snykFilters ?? name, craCompatible };
}

/** Every supported type, keyed by name, frozen: callers share it and must not edit Snyk's facts. */
export const UNIVERSAL_TYPES: Readonly<Record<UniversalTypeName, UniversalType>> = deepFreeze(
  Object.fromEntries(UNIVERSAL_TYPE_NAMES.map((n) => [n, build(n)])) as Record<UniversalTypeName, UniversalType>,
);

/** Narrows a connection's `type` from the API: anything else is a type this client cannot serve. */
export function isUniversalType(name: string): name is UniversalTypeName {
  return Object.hasOwn(UNIVERSAL_TYPES, name);
}

/** The type's entry, or undefined for a type Snyk's client would not load either. */
export function universalType(name: string): UniversalType | undefined {
  return isUniversalType(name) ? UNIVERSAL_TYPES[name] : undefined;
}

/**
 * The type whose rules and /systemcheck probes serve a connection (Snyk's determineFilterType): a
 * `jira` or `bitbucket-server` connection that carries the PAT key (whatever its value) is served
 * as the bearer-auth type, though Snyk still merges its own type's defaults into it (unless a
 * context that itself carries the PAT key is in use: Snyk judges a context by its own keys).
 */
export function determineFilterType<T extends string>(type: T, values: Readonly<Record<string, unknown>>): T | 'jira-bearer-auth' | 'bitbucket-server-bearer-auth' {
  if (type === 'jira' && Object.hasOwn(values, 'JIRA_PAT')) return 'jira-bearer-auth';
  if (type === 'bitbucket-server' && Object.hasOwn(values, 'BITBUCKET_PAT')) return 'bitbucket-server-bearer-auth';
  return type;
}

/**
 * Which connections' tunnels may carry a local `/webhook/<pathType>/...` request, best first, as
 * Snyk's websocketConnectionSelectorMiddleware tries them (matched against each tunnel's filter
 * type): Snyk's GitHub webhooks all say `github`, Bitbucket's say `bitbucket-server`.
 */
export function webhookTypeCandidates(pathType: string): readonly string[] {
  if (pathType === 'github') return ['github', 'github-enterprise', 'github-server-app', 'github-cloud-app'];
  if (pathType === 'bitbucket-server') return ['bitbucket-server', 'bitbucket-server-bearer-auth'];
  return [pathType];
}

/** The filter type of the tunnel a webhook goes to, given the open tunnels' filter types; undefined: Snyk answers 401. */
export function selectWebhookType(pathType: string, available: readonly string[]): string | undefined {
  return webhookTypeCandidates(pathType).find((t) => available.includes(t));
}

/**
 * A connection's starting values (Snyk's getConfigForType after getConsolidatedConfigForUniversalBroker):
 * the type's defaults plus the client's BROKER_CLIENT_URL for types that require one. The
 * connection's own values (its broker_client_url too) go on top.
 */
export function defaultsFor(name: UniversalTypeName, brokerClientUrl?: string): Readonly<Record<string, string>> {
  const t = UNIVERSAL_TYPES[name];
  if (!brokerClientUrl || !t.required.includes(CLIENT_URL)) return t.defaults;
  return { ...t.defaults, [CLIENT_URL]: brokerClientUrl };
}

/** Keys a context may override for the type (Snyk's getAllowedKeysForType); others are dropped. */
export function allowedContextKeys(name: UniversalTypeName): readonly string[] {
  const t = UNIVERSAL_TYPES[name];
  return [...new Set([...Object.keys(COMMON_DEFAULTS), ...COMMON_REQUIRED, ...Object.keys(t.defaults), ...t.required])];
}
