/** Shown by `broker dispatcher --help`: every variable the dispatcher reads, with its default. */
export const DISPATCHER_ENV_HELP = `
Environment:
  PORT                           HTTP port for both APIs and health/metrics (default 8080)
  DISPATCHER_HOST                bind address (default: all interfaces)
  DISPATCHER_URL_PREFIX          client allocation path prefix (default /hidden/broker)
  MAX_CLIENTS_PER_TOKEN          clients of one token holding an allocation at once (default 4)
  RETRY_AFTER_SECONDS            Retry-After on a refused allocation (429/503), seconds (default 2)
  CLIENT_LEASE_MS                a client whose tunnels all closed keeps its slot this long, ms (default 2000)
  CLIENT_CONNECT_GRACE_MS        a granted allocation, or one whose server went away, is held this long
                                 waiting for the client's tunnels, ms (default 30000)
  SERVER_TTL_MS                  a server with no registration/connection/ping/probe activity for this
                                 long leaves placement, ms (default 90000)
  SERVER_PROBE_INTERVAL_MS       probe GET <peer_url>/healthcheck of servers that reported a peer_url,
                                 ms; 0 disables (default 2000)
  SERVER_PROBE_TIMEOUT_MS        probe timeout, ms (default 2000)
  SERVER_PROBE_FAILURES          consecutive failed probes before a server leaves placement (default 2)
  DISPATCHER_REDIS_URL           redis:// or rediss:// URL: share state between dispatcher replicas
                                 (default: in-memory, one replica)
  DISPATCHER_REDIS_KEY_PREFIX    key prefix in Redis (default ha-broker:dispatcher:)
  BROKER_INTERNAL_SECRET         when set, /internal/... requires header x-broker-internal-secret
  DISPATCHER_SWEEP_INTERVAL_MS   housekeeping period (drop lapsed state), ms (default 10000)
  DISPATCHER_STARTUP_GRACE_MS    after a start that finds servers already running (learned from their
                                 reports, not their registration), new client ids wait this long so
                                 existing connections re-report first (keeps the limit exact after a
                                 restart with an empty store); 0 disables, ms (default 30000)
  LOG_LEVEL                      fatal|error|warn|info|debug|trace|silent (default info)
  BROKER_NODE_IDLE_GC            one full garbage collection when idle after a busy spell, so memory
                                 goes back to the system (default true; false: V8 decides alone)
  BROKER_NODE_YOUNG_GENERATION   capped (default): re-executed at start with --max-semi-space-size=8
                                 unless NODE_OPTIONS names a size; default: Node's own sizing
  HTTP_PROXY / HTTPS_PROXY / NO_PROXY   proxy for the server probes
  NODE_EXTRA_CA_CERTS            extra trusted CA bundle (PEM file) for https probes and rediss://
`;
