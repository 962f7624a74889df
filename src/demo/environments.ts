import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The accept files of the demo: servers pass everything public and route webhooks to the origin; clients reach the origin. */
export async function writeDemoAcceptFiles(dir: string, originPort: number): Promise<{ serverAccept: string; clientAccept: string }> {
  const serverAccept = join(dir, 'server-accept.json');
  const clientAccept = join(dir, 'client-accept.json');
  await writeFile(serverAccept, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [{ method: 'any', path: '/webhook/*', origin: `http://127.0.0.1:${originPort}/webhooks` }] }, null, 2));
  await writeFile(clientAccept, JSON.stringify({ private: [{ method: 'GET', path: '/*', origin: '${ORIGIN_URL}' }], public: [{ method: 'POST', path: '/webhook/*' }] }, null, 2));
  return { serverAccept, clientAccept };
}

export function dispatcherEnv(port: number): Record<string, string> {
  return { PORT: String(port), LOG_LEVEL: 'info' };
}

/** Server `i` of the demo, registered with the dispatcher. */
export function serverEnv(i: number, port: number, o: { dispatcherPort: number; accept: string }): Record<string, string> {
  return {
    PORT: String(port),
    BROKER_SERVER_ID: String(i),
    HOSTNAME: `broker-server-${i}`,
    BROKER_SERVER_PEER_URL: `http://127.0.0.1:${port}`,
    DISPATCHER_URL: `http://127.0.0.1:${o.dispatcherPort}`,
    ACCEPT: o.accept,
    LOG_LEVEL: 'info',
  };
}

/** Client `n` (1-based) of the demo: HA mode through the balancer, its own origin prefix `/c<n>`. */
export function clientEnv(n: number, port: number, o: { token: string; serverUrl: string; dispatcherPort: number; originPort: number; accept: string }): Record<string, string> {
  return {
    BROKER_TOKEN: o.token,
    BROKER_SERVER_URL: o.serverUrl,
    BROKER_CLIENT_URL: `http://127.0.0.1:${port}`,
    BROKER_HA_MODE_ENABLED: 'true',
    BROKER_DISPATCHER_BASE_URL: `http://127.0.0.1:${o.dispatcherPort}`,
    BROKER_CLIENT_ID: `00000000-0000-4000-8000-00000000000${n}`,
    PREFLIGHT_CHECKS_ENABLED: 'false',
    PORT: String(port),
    ACCEPT: o.accept,
    ORIGIN_URL: `http://127.0.0.1:${o.originPort}/c${n}`,
    LOG_LEVEL: 'info',
  };
}
