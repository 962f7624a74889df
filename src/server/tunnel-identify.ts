import { randomBytes } from 'node:crypto';
import type { Logger, SecretScrubber } from '../observability/logger.js';
import { CLIENT_INSTANCE_METADATA, encodeServerClose, hashToken, maskToken, parseClientInstance } from '../protocol/index.js';
import type { ClientIdentity, Connection, ConnectionHooks } from './connection.js';
import type { ConnectionPool } from './pool.js';
import type { DispatcherReporter } from './dispatcher-reporter.js';
import type { TunnelRegistry } from './tunnel-registry.js';
import { checkClientVersion } from './version-gate.js';

export interface IdentifyDeps {
  pool: ConnectionPool<Connection>;
  dispatcher: DispatcherReporter;
  registry: TunnelRegistry;
  logger: Logger;
  scrubber?: SecretScrubber;
  minimalSupportedVersion: string;
  minimalRecommendedVersion: string;
}

/** What a client says in its identify: its token, and (since 4.27) metadata. */
interface IdentifyPayload {
  token: string | undefined;
  metadata: Record<string, unknown>;
}

/**
 * A tunnel's identify: the token must be the one of its path and the client version
 * acceptable; then the connection joins the pool, ready for relays.
 */
export function createIdentify(deps: IdentifyDeps): ConnectionHooks['onIdentify'] {
  /** Per-process prefix of the per-tunnel instance labels (a restarted server must not reuse them). */
  const tunnelTag = `t${randomBytes(4).toString('hex')}`;
  return (conn, payload) => identify(deps, tunnelTag, conn, payload);
}

function identify(deps: IdentifyDeps, tunnelTag: string, conn: Connection, payload: unknown): void {
  const { pool, dispatcher, registry, logger } = deps;
  if (conn.state !== 'connecting') {
    logger.debug({ connection: conn.id }, 'repeated identify ignored');
    return;
  }
  const { token, metadata } = readIdentifyPayload(payload);
  if (!token) {
    logger.warn({ connection: conn.id }, 'client identified without a token; closing the tunnel');
    conn.transport.close();
    return;
  }
  deps.scrubber?.add(token);
  if (token !== conn.pathToken) {
    logger.warn({ connection: conn.id, maskedToken: maskToken(conn.pathToken) }, 'identify token differs from the tunnel path token; closing the tunnel');
    conn.transport.close();
    return;
  }
  const version = typeof metadata.version === 'string' ? metadata.version : 'unknown';
  const capabilities = Array.isArray(metadata.capabilities) ? metadata.capabilities.filter((c): c is string => typeof c === 'string') : [];
  if (!admitVersion(deps, conn, token, version, capabilities)) return;
  conn.identity = identityOf(conn, token, metadata, version, capabilities, tunnelTag);
  conn.state = 'identified';
  pool.add(token, conn);
  conn.state = 'ready';
  registry.updateGauge(token);
  dispatcher.clientConnected(token, conn.identity.clientId, version, conn.identity.role, conn.identity.instance);
  if (registry.drainReason !== undefined) {
    // Handshook just before the drain began: send it on its way like the others.
    conn.drain();
    conn.sendAwayWhenIdle(registry.drainReason);
  }
  logger.info(
    // mode as snyk-broker's server logs it: a Universal Broker connection or a classic client.
    { connection: conn.id, maskedToken: maskToken(token), hashedToken: hashToken(token), version, capabilities, mode: universalMode(metadata), connections: pool.members(token).length },
    'client connection identified',
  );
}

function universalMode(metadata: Record<string, unknown>): 'universal' | 'legacy' {
  const clientConfig = metadata.clientConfig as { universalBroker?: unknown } | undefined;
  return clientConfig?.universalBroker === true ? 'universal' : 'legacy';
}

/** Pre-4.27 clients identify with the bare token; later ones with `{ token, metadata }`. */
function readIdentifyPayload(payload: unknown): IdentifyPayload {
  if (typeof payload === 'string') return { token: payload.toLowerCase(), metadata: { version: 'pre-4.27' } };
  let token: string | undefined;
  let metadata: Record<string, unknown> = {};
  if (payload && typeof payload === 'object') {
    const p = payload as { token?: unknown; metadata?: unknown };
    token = typeof p.token === 'string' ? p.token.toLowerCase() : undefined;
    if (p.metadata && typeof p.metadata === 'object' && !Array.isArray(p.metadata)) metadata = p.metadata as Record<string, unknown>;
  }
  return { token, metadata };
}

/** The version gate: false when the client was refused (told why, and told not to come back). */
function admitVersion(deps: IdentifyDeps, conn: Connection, token: string, version: string, capabilities: string[]): boolean {
  const verdict = checkClientVersion(version, capabilities, deps.minimalSupportedVersion, deps.minimalRecommendedVersion);
  if (verdict.kind === 'refuse') {
    deps.logger.warn({ connection: conn.id, maskedToken: maskToken(token), version }, 'client version refused');
    try {
      conn.sendEvent('notification', [{ level: 'error', message: verdict.message }]);
    } catch {
      // closing anyway
    }
    // An outdated real client must not come back: primus::server::close stops its reconnects.
    conn.transport.send(encodeServerClose(), () => conn.transport.close());
    conn.drain();
    return false;
  }
  if (verdict.kind === 'warn') conn.sendEvent('notification', [{ level: 'warning', message: verdict.message }]);
  if (verdict.kind === 'unreadable') deps.logger.warn({ connection: conn.id, version }, 'client version is not a semantic version; letting it in');
  return true;
}

function identityOf(conn: Connection, token: string, metadata: Record<string, unknown>, version: string, capabilities: string[], tunnelTag: string): ClientIdentity {
  const { filters, ...rest } = metadata;
  return {
    token,
    clientId: typeof metadata.clientId === 'string' && metadata.clientId ? metadata.clientId : (conn.headerClientId ?? `conn${conn.seq}`),
    // A client without an instance id (Snyk's) is told apart per tunnel: its primary and
    // secondary are then two records at the dispatcher, which counts them all the same.
    instance: parseClientInstance(metadata[CLIENT_INSTANCE_METADATA]) ?? `${tunnelTag}.${conn.seq}`,
    role: typeof metadata.role === 'string' && metadata.role ? metadata.role : (conn.headerRole ?? 'primary'),
    version,
    capabilities,
    metadata: rest,
    filters,
  };
}
