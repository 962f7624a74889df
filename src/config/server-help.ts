/** Shown by `broker server --help`: every variable the server reads, with its default. */
export const SERVER_ENV_HELP = `
Environment (Snyk Broker names where they exist):
  PORT                               HTTP port for tunnels, the platform API and health (default 7341)
  BROKER_SERVER_HOST                 interface to bind (default: all interfaces)
  HTTPS_CERT / HTTPS_KEY             serve PORT over TLS (https and wss) with this PEM certificate and key (files)
  ACCEPT                             accept rules file (optional). public rules guard /broker/<token>/*
                                     (unset: every path is allowed); private rules guard webhooks from
                                     clients (unset: webhooks are refused with 401)
  <VAR>, <VAR>_POOL                  values for \${VAR} in accept rules (a missing one stops the start)
  DISPATCHER_URL                     report server/connection events to this dispatcher (default: off)
  DISPATCHER_VERSION                 version query parameter of dispatcher calls (default 2022-12-02~experimental)
  BROKER_SERVER_PEER_ROUTING         with DISPATCHER_URL: spread platform requests over the token's tunnels on peer
                                     servers too, and send tunnels and answer uploads to the server they belong
                                     to (server_id), using the dispatcher's lookups (default true)
  BROKER_SERVER_ROUTING_REFRESH_MS   how often the routing lookup is refreshed, ms (default 2000)
  BROKER_SERVER_REGISTER_INTERVAL_MS how often server-starting is re-sent to the dispatcher, ms (default 15000; 0 = only at start)
  BROKER_INTERNAL_SECRET             sent as x-broker-internal-secret on dispatcher calls; never logged
  BROKER_SERVER_ID                   server id towards the dispatcher (default: HOSTNAME after its last "-",
                                     so pod broker-server-2 is 2; "0" when HOSTNAME is unset)
  HOSTNAME                           host name; health_check_link is http://$HOSTNAME/healthcheck
  BROKER_SERVER_PEER_URL             URL peers use to reach this server (default http://$HOSTNAME:$PORT);
                                     internal: never handed to clients
  BROKER_SERVER_PUBLIC_URL           URL clients may use to reach this very server (a per-server ingress);
                                     the dispatcher hands it to HA clients as server_url (default unset:
                                     clients connect to their BROKER_SERVER_URL with server_id and the
                                     servers route the tunnel here; a client uses a server_url on another
                                     host only with BROKER_CLIENT_TRUST_SERVER_URL=true)
  SOCKET_PING_INTERVAL               engine.io ping interval, ms (default 25000)
  SOCKET_PING_TIMEOUT                engine.io pong deadline, ms (default 20000)
  SOCKET_MAX_RESPONSE_LENGTH         largest tunnel message, bytes (default 22020096)
  BROKER_SERVER_PROBE_DELAY_MS       a tunnel with requests waiting and silent this long gets a probe (an extra
                                     ping); a forward to a peer server waiting this long probes the peer's
                                     /livez, ms (default 300)
  BROKER_SERVER_PROBE_TIMEOUT_MS     a probe unanswered this long: the tunnel (peer) is taken for hung, gets no
                                     new requests, and every GET/HEAD/OPTIONS on it that has sent nothing to
                                     the platform yet is sent again on a responsive connection of the token
                                     (hedging; first answer wins; POSTs are never sent twice), ms (default 600)
  BROKER_SERVER_REQUEST_TIMEOUT_MS   platform request: wait for the client's answer, ms; then 504 (default 60000)
  BROKER_SERVER_DRAIN_GRACE_MS       SIGTERM: time for in-flight relays to finish, ms (default 25000)
  BROKER_SERVER_BODY_LIMIT           largest platform request body, bytes; larger gets 413 (default 10485760)
  BROKER_SERVER_WEBHOOK_TIMEOUT_MS   webhook forwarded to its destination: deadline, ms (default 60000)
  BROKER_SERVER_RETRY_BUFFER_BYTES   GET/HEAD/OPTIONS answers up to this size are held until complete so a
                                     client dying mid-answer is retried on another tunnel (default 65536; 0 off)
  BROKER_SERVER_ANSWER_GRACE_MS      after a tunnel drops, a request that cannot be retried (POST...) still waits
                                     this long for its answer upload before 502 tunnel-closed, ms (default 5000)
  BROKER_SERVER_RECONNECT_WAIT_MS    a GET/HEAD/OPTIONS whose every tunnel here dropped (and no peer took it)
                                     waits this long for the client to reconnect, then is retried once;
                                     0: 502 tunnel-closed at once, ms (default 5000)
  BROKER_CONNECTION_HANDSHAKE_TTL_MS a tunnel must identify within this time, ms (default 30000)
  BROKER_SERVER_HEADERS_TIMEOUT_MS   a connection must send its request headers within this time, else
                                     408 and closed (slow senders, slowloris), ms (default 60000)
  MINIMAL_SUPPORTED_BROKER_VERSION   older snyk-broker clients are refused (default 4.100.0)
  MINIMAL_RECOMMENDED_BROKER_VERSION older snyk-broker clients get a warning (default 4.182.0)
  BROKER_SERVER_MANDATORY_AUTH_ENABLED  Universal Broker clients: every new tunnel needs authorization: bearer <jwt>
                                     and x-snyk-broker-client-id, validated by GATEWAY_HOSTNAME (201 passes, else
                                     401 + WWW-Authenticate: Bearer); answer uploads go to
                                     /hidden/brokers/response-data/ with the tunnel's JWT azp (/response-data/ is
                                     then not served); auth refreshes are taken (default false)
  GATEWAY_HOSTNAME                   with mandatory auth (required): base URL of the validation,
                                     POST <url>/hidden/brokers/connections/<id>/auth/validate
  AUTHORIZATION_SERVICE              with mandatory auth: base URL that validates auth refreshes (default GATEWAY_HOSTNAME)
  GATEWAY_HEADER_NAME / GATEWAY_HEADER_VALUE  one more header on every validation call (the value is never logged)
  GATEWAY_TLS_OPTION_NAME / GATEWAY_TLS_OPTION_VALUE  rejectUnauthorized / false: the handshake validation does not
                                     check the gateway's certificate (no other option is supported)
  BROKER_SERVER_AUTH_TIMEOUT_MS      a validation call not answered within this fails with 401 auth-unavailable, ms (default 10000)
  STALE_CONNECTIONS_CLEANUP_FREQUENCY  with mandatory auth: tunnels whose credentials were last validated (handshake
                                     or refresh) this long ago are ended, checked this often, ms (default: checked
                                     every 600000, ended after 3900000)
  SNYK_INTERNAL_AUTH_CLIENT_ID_HEADER  a header of auth refresh requests whose value is logged (debug)
  LOG_LEVEL                          fatal|error|warn|info|debug|trace|silent (default info)
  BROKER_NODE_IDLE_GC                one full garbage collection when idle after a busy spell, so memory
                                     goes back to the system (default true; false: V8 decides alone)
  BROKER_NODE_YOUNG_GENERATION       capped (default): re-executed at start with --max-semi-space-size=8
                                     unless NODE_OPTIONS names a size; default: Node's own sizing
  BROKER_NODE_OLD_GENERATION         capped (default): re-executed at start with --heap-growing-percent=150
                                     unless node's command line sets it; default: V8's own growth
  HTTP_PROXY / HTTPS_PROXY / NO_PROXY   proxy for outbound calls (webhook destinations, dispatcher)
  NODE_EXTRA_CA_CERTS                extra trusted CA bundle (PEM file)

Endpoints: /healthcheck, /, /livez, /readyz, /metrics, /connection-status/<token>, /connections-status,
  ALL /broker/<token>/*, GET /service/<token>/<command>, POST /response-data/<token>/<streamingID>, tunnels under
  /primus/<token>/; with mandatory auth POST /hidden/brokers/response-data/<token>/<streamingID> instead, and
  POST /hidden/brokers/connections/<id>/auth/refresh?connection_role=<role>.
`;
