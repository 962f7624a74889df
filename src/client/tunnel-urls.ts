import type { TunnelRole } from '../config/client.js';

/** Where a tunnel connects: the broker server (or the pod the dispatcher chose) and its id. */
export interface Placement {
  serverUrl: string;
  serverId?: string | number;
  /**
   * Set when serverUrl is the server's direct URL from the dispatcher: the configured
   * BROKER_SERVER_URL, used when the direct URL cannot be reached from this network.
   */
  fallbackUrl?: string;
}

/** server_id is omitted when falsy, as the real client does (number 0 omitted, string "0" kept). */
export function placementQuery(placement: Placement, role: TunnelRole): string {
  const params = new URLSearchParams();
  if (placement.serverId) params.set('server_id', String(placement.serverId));
  params.set('connection_role', role);
  return params.toString();
}

/** The http(s) engine.io endpoint of a tunnel, with the contract's query (the transport adds EIO/transport). */
export function tunnelHttpUrl(placement: Placement, token: string, role: TunnelRole): string {
  const base = new URL(placement.serverUrl);
  base.pathname = `/primus/${encodeURIComponent(token)}/`;
  base.search = placementQuery(placement, role);
  return base.toString();
}

export function tunnelUrl(placement: Placement, token: string, role: TunnelRole): string {
  const base = new URL(placement.serverUrl);
  base.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  base.pathname = `/primus/${encodeURIComponent(token)}/`;
  base.search = `${placementQuery(placement, role)}&EIO=4&transport=websocket`;
  return base.toString();
}
