// A dispatcher and several of our servers reporting to it with peer routing on: the smallest
// HA platform side, for tests that place clients on chosen servers themselves.
import type { ProcessGroup, RunningProcess } from './processes.js';
import { freePort } from './ports.js';

export interface PeerServers {
  dispatcherUrl: string;
  dispatcher: RunningProcess;
  /** By server id. */
  ports: Record<string, number>;
  servers: Record<string, RunningProcess>;
  /** `http://127.0.0.1:<port>` by server id. */
  urls: Record<string, string>;
}

/** Starts the dispatcher and one server per id (all on 127.0.0.1), and waits until all listen. */
export async function startPeerServers(
  group: ProcessGroup,
  ids: readonly string[],
  o: { internalSecret?: string; serverEnv?: Record<string, string>; dispatcherEnv?: Record<string, string> } = {},
): Promise<PeerServers> {
  const secret = o.internalSecret ? { BROKER_INTERNAL_SECRET: o.internalSecret } : {};
  const dPort = await freePort();
  const dispatcherUrl = `http://127.0.0.1:${dPort}`;
  const dispatcher = group.broker('dispatcher', 'dispatcher', { PORT: String(dPort), DISPATCHER_HOST: '127.0.0.1', ...secret, ...o.dispatcherEnv });
  await dispatcher.waitForOutput('dispatcher listening', 30_000);
  const ports: Record<string, number> = {};
  const urls: Record<string, string> = {};
  const servers: Record<string, RunningProcess> = {};
  for (const id of ids) {
    ports[id] = await freePort();
    urls[id] = `http://127.0.0.1:${ports[id]}`;
    servers[id] = group.broker(`server-${id}`, 'server', {
      PORT: String(ports[id]),
      BROKER_SERVER_HOST: '127.0.0.1',
      BROKER_SERVER_ID: id,
      BROKER_SERVER_PEER_URL: urls[id],
      DISPATCHER_URL: dispatcherUrl,
      BROKER_SERVER_ROUTING_REFRESH_MS: '300',
      ...secret,
      ...o.serverEnv,
    });
  }
  await Promise.all(Object.values(servers).map((s) => s.waitForOutput('broker server listening', 30_000)));
  return { dispatcherUrl, dispatcher, ports, servers, urls };
}
