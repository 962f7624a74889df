/** A broker server as the dispatcher knows it (times are epoch ms from the injected clock). */
export interface ServerRecord {
  id: string;
  /** URL at which peers and our clients reach this server directly (our servers report it). */
  peerUrl?: string;
  /**
   * The server's own public URL (BROKER_SERVER_PUBLIC_URL), handed to clients as server_url.
   * Unset (the default): clients connect to their BROKER_SERVER_URL with server_id.
   */
  publicUrl?: string;
  /** As sent by the server (the real server's link has no port; informational only). */
  healthCheckLink?: string;
  /** First time this store heard of the server (registration or any report). */
  firstSeen: number;
  /** Last server-starting registration; unset when the server was only learned from reports. */
  registeredAt?: number;
  /** Last registration, connection call, ping or successful probe. */
  lastSeen: number;
  /**
   * When the store first learned of this server from a connection report, i.e. the server was
   * already running with clients (0 when its registration came first).
   */
  discoveredAt?: number;
  /** Last call the server itself made (registration, stopping, connection report). */
  lastReport?: number;
  /** Set by server-stopping: no new clients; its clients move when they ask again. */
  stoppingSince?: number;
  /** Set when consecutive health probes failed; cleared by a good probe or a new registration. */
  downSince?: number;
}

/** Field names of ServerRecord as stored (Redis hash fields; memory map keys). */
export type ServerField = keyof Omit<ServerRecord, 'id'>;
export type ServerPatch = Partial<Record<ServerField, string | number>>;

/** One client id's slot for a token. */
export interface Allocation {
  serverId: string;
  /** Last time the client asked and was granted (or first report when `reported`). */
  grantedAt: number;
  /**
   * Held until this time when the client has no live tunnel: set at grant (waiting for the
   * client to connect) and when its last tunnel closes (the lease). A live tunnel holds it anyway.
   */
  holdUntil?: number;
  /** Created from a server's connection report rather than an allocation request. */
  reported?: boolean;
  /** The client process (instance id) that last asked for it; a release from another one is ignored. */
  instance?: string;
}

/** The tunnels one client id holds on one server for a token. */
export interface ConnectionRecord {
  serverId: string;
  clientId: string;
  /** The client process the tunnels belong to, when the server says (two pods share a client id during a rollout). */
  instance?: string;
  /** Open tunnels by role; '' counts tunnels reported without a role (the real server sends none). */
  roles: Record<string, number>;
  firstSeen: number;
  lastSeen: number;
}

/** Everything about one hashed token; read and written as one value so decisions are atomic. */
export interface TokenState {
  allocations: Record<string, Allocation>;
  /** Keyed by `${serverId} ${clientId}`, plus ` ${instance}` when the server reports one. */
  connections: Record<string, ConnectionRecord>;
  /** Client ids that released their slot (DELETE): their lingering tunnels do not re-take one. */
  released: Record<string, number>;
}

export function emptyTokenState(): TokenState {
  return { allocations: {}, connections: {}, released: {} };
}

export function isEmptyTokenState(s: TokenState): boolean {
  return Object.keys(s.allocations).length === 0 && Object.keys(s.connections).length === 0 && Object.keys(s.released).length === 0;
}

export function connectionKey(serverId: string, clientId: string, instance?: string): string {
  return instance === undefined ? `${serverId} ${clientId}` : `${serverId} ${clientId} ${instance}`;
}

export function tunnelCount(c: ConnectionRecord): number {
  let n = 0;
  for (const v of Object.values(c.roles)) n += v;
  return n;
}

/** Short, non-reversible label for logs and metrics: the first 8 hex chars of the hashed token. */
export function tokenLabel(hashedToken: string): string {
  return hashedToken.slice(0, 8);
}
