import { CLIENT_INSTANCE_QUERY, hashToken, parseClientInstance } from '../protocol/index.js';

export type DispatcherEvent = 'server-starting' | 'client-connected' | 'client-pinged' | 'client-disconnected' | 'server-stopping';

/** One server → dispatcher call of protocol.md §6.4, relative to the server's base URL. */
export interface DispatcherCall {
  event: DispatcherEvent;
  method: 'POST' | 'DELETE';
  path: string;
  query: Record<string, string>;
  body?: unknown;
}

/** What the server says about itself in every report body. */
export interface ServerAttributes {
  healthCheckLink: string;
  peerUrl: string;
  publicUrl?: string;
}

/** The full URL of a call; `version` goes last, as the real server sends it. */
export function dispatcherCallUrl(base: string, dispatcherVersion: string, call: DispatcherCall): string {
  const params = new URLSearchParams({ ...call.query, version: dispatcherVersion });
  return `${base}${call.path}?${params.toString().replace(/~/g, '%7E')}`;
}

const connectionPath = (token: string) => `/connections/${hashToken(token)}`;
const attributes = (server: ServerAttributes, extra: Record<string, string | number> = {}) => ({
  data: { attributes: { health_check_link: server.healthCheckLink, peer_url: server.peerUrl, ...(server.publicUrl ? { public_url: server.publicUrl } : {}), ...extra } },
});
/** connection_role (our extra) lets the dispatcher count a client's tunnels exactly even when a report is retried. */
const roleQuery = (role: string | undefined): Record<string, string> => (role && /^[A-Za-z0-9_-]{1,32}$/.test(role) ? { connection_role: role } : {});
/** broker_client_instance (our extra): which of the processes sharing a client id the tunnel belongs to. */
const instanceQuery = (instance: string | undefined): Record<string, string> => {
  const v = parseClientInstance(instance);
  return v ? { [CLIENT_INSTANCE_QUERY]: v } : {};
};

export function serverStartingCall(server: ServerAttributes, openTunnels: number): DispatcherCall {
  return { event: 'server-starting', method: 'POST', path: '', query: {}, body: attributes(server, { open_tunnels: openTunnels }) };
}

export function serverStoppingCall(): DispatcherCall {
  return { event: 'server-stopping', method: 'DELETE', path: '', query: {} };
}

export function clientConnectedCall(server: ServerAttributes, token: string, clientId: string, clientVersion: string, role?: string, instance?: string): DispatcherCall {
  return {
    event: 'client-connected',
    method: 'POST',
    path: connectionPath(token),
    query: { broker_client_id: clientId, ...roleQuery(role), ...instanceQuery(instance), request_type: 'client-connected' },
    body: attributes(server, { broker_client_version: clientVersion }),
  };
}

export function clientPingedCall(server: ServerAttributes, token: string, clientId: string, clientVersion: string, latencyMs: number, role?: string, instance?: string): DispatcherCall {
  return {
    event: 'client-pinged',
    method: 'POST',
    path: connectionPath(token),
    query: { broker_client_id: clientId, ...roleQuery(role), ...instanceQuery(instance), latency: String(Math.max(0, Math.round(latencyMs))), request_type: 'client-pinged' },
    body: attributes(server, { broker_client_version: clientVersion }),
  };
}

export function clientDisconnectedCall(token: string, clientId: string, role?: string, instance?: string): DispatcherCall {
  return { event: 'client-disconnected', method: 'DELETE', path: connectionPath(token), query: { broker_client_id: clientId, ...roleQuery(role), ...instanceQuery(instance) } };
}
