import { randomBytes } from 'node:crypto';
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

/** Where a Universal client replica finds Snyk's API and its deployment. */
export interface UniversalReplicaOptions {
  api: { url: string; deploymentId: string; clientId: string; clientSecret: string };
  serverUrl: string;
  /** The variables the connections' `${ENV}` references name (their credentials). */
  credentials: Record<string, string>;
}

/**
 * Universal client replica `n` (1-based): every connection of the deployment from Snyk's API, in
 * HA mode (allocation through Snyk's API), plain-http origins (INSECURE_DOWNSTREAM).
 */
export function universalReplicaEnv(n: number, port: number, o: UniversalReplicaOptions): Record<string, string> {
  return {
    UNIVERSAL_BROKER_ENABLED: 'true',
    DEPLOYMENT_ID: o.api.deploymentId,
    CLIENT_ID: o.api.clientId,
    CLIENT_SECRET: o.api.clientSecret,
    API_BASE_URL: o.api.url,
    BROKER_SERVER_URL: o.serverUrl,
    BROKER_CLIENT_URL: `http://127.0.0.1:${port}`,
    BROKER_HA_MODE_ENABLED: 'true',
    BROKER_CLIENT_ID: `00000000-0000-4000-9000-00000000000${n}`,
    INSECURE_DOWNSTREAM: 'true',
    PREFLIGHT_CHECKS_ENABLED: 'false',
    PORT: String(port),
    LOG_LEVEL: 'info',
    ...o.credentials,
  };
}

/** A connection of the Universal demo's deployment, and the path the platform asks for on it. */
export interface DemoDeploymentConnection {
  name: string;
  type: string;
  /** A GET its type's accept rules allow. */
  path: string;
  /** configuration.required of the connection in Snyk's API. */
  required: Record<string, string>;
}

/**
 * The Universal demo's deployment: a github and a gitlab connection whose APIs are demo origins
 * (plain http: the replicas run with INSECURE_DOWNSTREAM), their tokens `${ENV}` references
 * the replicas resolve from their environment (`credentials`).
 */
export function demoDeployment(o: { githubPort: number; gitlabPort: number }): { connections: DemoDeploymentConnection[]; credentials: Record<string, string> } {
  return {
    connections: [
      { name: 'corp-github', type: 'github', path: '/user/repos', required: { github_token: '${DEMO_GITHUB_TOKEN}', github_api: `127.0.0.1:${o.githubPort}` } },
      { name: 'corp-gitlab', type: 'gitlab', path: '/api/v4/projects', required: { gitlab_token: '${DEMO_GITLAB_TOKEN}', gitlab: `127.0.0.1:${o.gitlabPort}` } },
    ],
    credentials: { DEMO_GITHUB_TOKEN: `ghp_demo${randomBytes(12).toString('hex')}`, DEMO_GITLAB_TOKEN: `glpat-demo${randomBytes(8).toString('hex')}` },
  };
}
