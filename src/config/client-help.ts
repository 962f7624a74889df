/** Shown by `broker client --help`: every variable the client reads, with its default. */
export const CLIENT_ENV_HELP = `
Environment (Snyk Broker names; existing deployments work unchanged):
  BROKER_TOKEN                   (required) the broker token; never logged
  BROKER_SERVER_URL              broker server base URL, http(s) (default https://broker.snyk.io,
                                 Snyk's US server, as in Snyk's images)
  BROKER_SCM_TYPE                SCM preset: Snyk's accept template and .env defaults for github-com,
                                 github-enterprise, github-server-app, github-cloud-app, gitlab,
                                 bitbucket-server, bitbucket-server-bearer-auth, azure-repos, jira,
                                 jira-bearer-auth, artifactory, nexus, nexus2 or apprisk (an explicit
                                 ACCEPT wins; github-cloud-app: github-server-app's rules, github.com)
  BROKER_CLIENT_URL              externally reachable URL of this client (preflight, \${BROKER_CLIENT_URL})
  BROKER_CLIENT_ID               stable client id (default: a random UUID per process)
  PORT                           local HTTP port for webhooks and health (default 7341)
  HTTPS_CERT / HTTPS_KEY         serve the local port over HTTPS with this cert/key (files)
  ACCEPT                         accept rules file (default: the preset's template, else accept.json
                                 in the working directory)
  <VAR>, <VAR>_POOL              values for \${VAR} in accept rules (an unset one is empty, as in
                                 snyk-broker: one warning at start; a rule left with no origin
                                 answers 502). $VAR in any variable's value is expanded, and a .env
                                 file in the working directory is read (the environment wins); a
                                 _POOL (comma-separated) wins over <VAR> and rotates per request
  ACCEPT_CODE / ACCEPT_GIT       Snyk's rule injection into the default accept rules (preset or
  ACCEPT_IAC                     ACCEPT=accept.json, never a custom file): any value but "false"
  ACCEPT_LARGE_MANIFESTS         turns it on; ACCEPT_IAC lists extensions (tf,yaml,yml,json,tpl).
  ACCEPT_APPRISK / ACCEPT_ESSENTIALS   ACCEPT_APPRISK, ACCEPT_ESSENTIALS and ACCEPT_CUSTOM_PR_TEMPLATES
  ACCEPT_CUSTOM_PR_TEMPLATES     add nothing: their rules are not in the snyk-broker package
  GITHUB_APP_ID                  GitHub App (github-server-app, github-cloud-app): the App's ID;
  GITHUB_APP_CLIENT_ID           with these all set, installation tokens are minted and refreshed
  GITHUB_APP_INSTALLATION_ID     for \${GHA_ACCESS_TOKEN} / \${JWT_TOKEN} in the rules (rules for GitHub
  GITHUB_APP_PRIVATE_PEM_PATH    hosts without a credential send it); the App's RSA key (PEM file);
  GITHUB_API                     GitHub's API host (api.github.com, ghe.example.com/api/v3)
  GIT_COMMITTER_NAME             commit signing: with all four set, commits made through GitHub's Git
  GIT_COMMITTER_EMAIL            Data API get this committer and a signature by GPG_PRIVATE_KEY (an
  GPG_PRIVATE_KEY                armored private key, unlocked with GPG_PASSPHRASE at start); trees
  GPG_PASSPHRASE                 with symlinks are refused. GIT_COMMITER_* (one T) are read too
  BROKER_HA_MODE_ENABLED         true/yes: ask the dispatcher which server to use (default false);
                                 tunnels go to BROKER_SERVER_URL with ?server_id=<the allocated server>
  BROKER_CLIENT_TRUST_SERVER_URL true: in HA mode, connect to a server_url the dispatcher names even
                                 when its host is not BROKER_SERVER_URL's (default false: such a URL
                                 is ignored, the token only goes to the host configured here)
  API_BASE_URL                   Snyk API base URL: dispatcher (first choice in HA mode) and the
                                 webhook fallback when no tunnel is open
  BROKER_DISPATCHER_BASE_URL     dispatcher base URL (when API_BASE_URL is unset)
  DISPATCHER_URL_PREFIX          allocation path prefix (default /hidden/broker; SNYK_DISPATCHER_URL_PREFIX also read)
  BROKER_CLIENT_LOCATION         deployment_location sent to the dispatcher (default snyk-broker-client)
  PREFLIGHT_CHECKS_ENABLED       run start-up checks (default true)
  LOG_LEVEL                      fatal|error|warn|info|debug|trace|silent (default info)
  BROKER_NODE_IDLE_GC            one full garbage collection when idle after a busy spell, so memory
                                 goes back to the system (default true; false: V8 decides alone)
  BROKER_NODE_YOUNG_GENERATION   capped (default): re-executed at start with --max-semi-space-size=8
                                 unless NODE_OPTIONS names a size; default: Node's own sizing
  HTTP_PROXY / HTTPS_PROXY / NO_PROXY   proxy for every outbound call (origins, server, dispatcher)
  NODE_EXTRA_CA_CERTS / CA_CERT  extra trusted CA bundle (PEM file)
  NODE_TLS_REJECT_UNAUTHORIZED   0 turns TLS verification off (not recommended)
  BROKER_CLIENT_TRANSPORT        websocket | polling (engine.io long-polling, for proxies that break
                                 websockets) (default websocket)
  SOCKET_PING_INTERVAL           tunnel heartbeat interval, ms (default 25000)
  SOCKET_PONG_TIMEOUT            heartbeat answer deadline, ms (default 10000)
  SOCKET_CONNECT_TIMEOUT         tunnel connect deadline, ms (default 10000)
  SOCKET_MAX_RESPONSE_LENGTH     cap of an answer sent in one ack, bytes (default 20971520)
  BROKER_CLIENT_MAX_FRAME_BYTES  largest tunnel frame decoded, bytes (default 22020096)
  BROKER_CLIENT_POST_TIMEOUT     response-data upload timeout, ms (default 1200000)
  BROKER_CLIENT_WEBHOOK_BODY_LIMIT   largest webhook body, bytes (default 10485760)
  BROKER_CLIENT_WEBHOOK_TIMEOUT_MS   wait for the server's answer to a webhook, ms (default 120000)
  BROKER_CLIENT_DRAIN_GRACE_MS   SIGTERM: time for in-flight relays to finish, ms (default 25000)
  BROKER_CLIENT_TUNNEL_ANSWERS   false: always answer by POST /response-data, even to our server
                                 (default true: answers up to 64 KiB go back on the tunnel when
                                 the server offers it; snyk-broker's server never does)
  BROKER_CLIENT_TUNNEL_STREAMS   true: with our server, stream larger answers over the tunnel (credit windows) instead of POST (default false)
  BROKER_HEALTHCHECK_PATH        (default /healthcheck)
  BROKER_SYSTEMCHECK_PATH        (default /systemcheck)
  BROKER_CLIENT_VALIDATION_URL   URL probed by /systemcheck
  BROKER_CLIENT_VALIDATION_METHOD            (default GET)
  BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER   Authorization header for the probe ($VAR naming
                                 a <VAR>_POOL: one probe per pool value)
  BROKER_CLIENT_VALIDATION_BASIC_AUTH        user:password for the probe (same $VAR pools)
  BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER_POOL / BROKER_CLIENT_VALIDATION_BASIC_AUTH_POOL
                                 comma-separated credentials: /systemcheck checks and reports each
  BROKER_CLIENT_VALIDATION_TIMEOUT_MS        (default 5000)
  REMOVE_X_FORWARDED_HEADERS     drop x-forwarded-* headers toward origins (default false)
  DISABLE_BODY_VARS_SUBSTITUTION / DISABLE_HEADER_VARS_SUBSTITUTION
                                 true: ignore BROKER_VAR_SUB / x-broker-var-sub (default false)
  BROKER_VERSION                 version announced to the server (default 5.22.14+ha-broker.<version>)
  INSECURE_DOWNSTREAM            true: call origins and the /systemcheck URL over plain http, even
                                 when they say https (hosts under .snyk.io excepted) (default false)
  RES_BODY_URL_SUB               Artifactory/Nexus URL (e.g. https://nexus.example.com/repository):
                                 rewritten in JSON answers to point through the broker (npm)
  LOG_ENABLE_BODY                true: log relayed request and response bodies at debug level,
                                 credentials masked (default false)
  DISABLE_SNIPPETS               true: leave the Snyk Code snippets rule out of the rules
                                 ACCEPT_CODE injects (default false)
  Snyk variables ha-broker does not implement (Code Agent, Container Registry Agent, ...) get one
  warning each at start.

Universal Broker mode (one client for every connection of a Snyk deployment; docs/universal-broker.md):
  UNIVERSAL_BROKER_ENABLED       true: run the Universal client (false/no/0 keep the classic one)
  DEPLOYMENT_ID                  (required) the deployment whose connections this client serves
  CLIENT_ID / CLIENT_SECRET      (required) the deployment's OAuth client credentials
  API_BASE_URL                   Snyk's API (default: BROKER_DISPATCHER_BASE_URL, else
                                 BROKER_SERVER_URL's broker. → api., else https://api.snyk.io)
  API_VERSION                    ?version= of the connections list (default 2024-02-08~experimental)
  BROKER_CLIENT_URL              every connection's default BROKER_CLIENT_URL
  BROKER_HA_MODE_ENABLED         true: each connection's tunnels are placed by the dispatcher
  AUTH_EXPIRATION_OVERRIDE       ms between each tunnel's auth renewals (default 600000)
  SKIP_REMOTE_CONFIG             true: connections from CONNECTIONS in config.<SERVICE_ENV>.json
                                 (SERVICE_ENV default universal), no API calls
  BROKER_CLIENT_SYNC_INTERVAL_MS ms between syncs while no tunnel is open (default 60000)
  <NAME>                         the values the connections' credential references \${NAME} name;
                                 a connection whose reference is unset is off (one log line)

Endpoints (PORT): /healthcheck, /systemcheck, /health/checks[/<id>], /livez, /readyz, /metrics,
  GET|POST /filters; anything else is relayed to the broker server when a public rule allows it.
`;
