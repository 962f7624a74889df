import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { ProcessGroup, type RunningProcess } from '../test/support/processes.js';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { snykBrokerNode, startSnykBroker } from '../test/support/snyk-broker.js';
import { REPO_ROOT } from '../test/support/paths.js';
import { freePort } from '../test/support/ports.js';
import { waitFor } from '../test/support/wait.js';

export const TOKEN = '3d6f0c4a-2b1e-4f5a-9c8d-7e6f5a4b3c2d';

export interface System {
  name: string;
  /** Base URL the "platform" calls: requests go to `${platform}/<path>`. */
  platform: string;
  client?: RunningProcess;
  server?: RunningProcess;
  stop(): Promise<void>;
}

async function acceptFiles(originUrl: string) {
  const dir = await mkdtemp(join(tmpdir(), 'bench-'));
  const server = join(dir, 'server-accept.json');
  const client = join(dir, 'client-accept.json');
  await writeFile(server, JSON.stringify({ public: [{ method: 'any', path: '/*' }], private: [{ method: 'any', path: '/*', origin: originUrl }] }));
  await writeFile(client, JSON.stringify({ private: [{ method: 'any', path: '/*', origin: '${ORIGIN_URL}' }], public: [{ method: 'any', path: '/*' }] }));
  return { server, client };
}

/**
 * The request the "github-com rules" system is measured with: Snyk Code fetching a file's
 * content (a snippet), which the github-com template with ACCEPT_CODE=true lets through by its
 * last GET rule, after some 160 others of the method were tried (the bench origin answers it as
 * it answers /small).
 */
export const GITHUB_COM_PATH = '/repos/acme/app/contents/src%2Fmain.ts?ref=main';

/**
 * What a github-com user sets (Snyk's docs: BROKER_SCM_TYPE=github-com, GITHUB_TOKEN, ACCEPT_CODE),
 * with every GitHub host of the template pointed at the bench origin, which speaks plain http
 * (INSECURE_DOWNSTREAM turns the template's https origins to http). No ACCEPT: the client loads
 * Snyk's github-com accept template and applies ACCEPT_CODE to it, as for a real user.
 */
function githubComClientEnv(originUrl: string): Record<string, string> {
  const host = new URL(originUrl).host;
  return { BROKER_SCM_TYPE: 'github-com', GITHUB_TOKEN: 'ghp_bench0000000000000000000000000000000', GITHUB: host, GITHUB_API: host, GITHUB_RAW: host, GITHUB_GRAPHQL: host, ACCEPT_CODE: 'true', INSECURE_DOWNSTREAM: 'true' };
}

async function waitReady(platform: string, path = '/small'): Promise<void> {
  await waitFor(`${platform} to relay ${path}`, async () => {
    const res = await request(`${platform}${path}`, { headersTimeout: 2_000, bodyTimeout: 2_000 });
    await res.body.dump();
    return res.statusCode === 200;
  }, { timeoutMs: 60_000, intervalMs: 250 });
}

/** Runtime settings (env) the image ships with, read from the Dockerfile's ENV lines: ours runs the way users run it. */
export function shippedEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  let text = '';
  try {
    text = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  } catch {
    return out;
  }
  for (const m of text.matchAll(/^ENV\s+(NODE_OPTIONS|MALLOC_ARENA_MAX)=("[^"]*"|\S+)/gm)) out[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  return out;
}

/** One line saying how a system runs: node binary and version, flags and env. */
export function describeRun(kind: 'ours' | 'snyk-broker', env: Record<string, string>): string {
  const node = kind === 'ours' ? process.execPath : snykBrokerNode();
  const version = node === process.execPath ? process.version : execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  const settings = Object.entries(env).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
  return `node ${version} (${node}), ${settings || 'no flags, no runtime env'}`;
}

export function directSystem(originUrl: string): System {
  return { name: 'direct', platform: originUrl, stop: async () => {} };
}

export interface PairOptions {
  /** Our CLI to run (default dist/cli.js): A/B runs compare two builds. */
  cli?: string;
  /** Extra environment for our server and client (e.g. NODE_OPTIONS). */
  env?: Record<string, string>;
  /** Extra environment for our server only, on top of env (e.g. a server-only NODE_OPTIONS). */
  serverEnv?: Record<string, string>;
  name?: string;
  /** Ours only: the client runs with Snyk's github-com template and ACCEPT_CODE (githubComClientEnv), not the bench's one-rule file. */
  githubComRules?: boolean;
}

/** The bare relay of floor-relay.ts (a yardstick, not a broker), built next to this file. */
const FLOOR_SCRIPT = fileURLToPath(new URL('./floor-relay.js', import.meta.url));

/** One broker server and one client: the real snyk-broker, ours, or the floor relay. */
export async function brokerPair(kind: 'ours' | 'snyk-broker' | 'floor', originUrl: string, options: PairOptions = {}): Promise<System> {
  const group = new ProcessGroup();
  const files = await acceptFiles(originUrl);
  const serverPort = await freePort();
  const clientPort = await freePort();
  const extra = kind === 'snyk-broker' ? {} : (options.env ?? {});
  const serverExtra = kind === 'snyk-broker' ? {} : (options.serverEnv ?? {});
  const serverEnv = { PORT: String(serverPort), ACCEPT: files.server, LOG_LEVEL: 'error', ...extra, ...serverExtra };
  const githubCom = kind === 'ours' && options.githubComRules === true;
  const clientEnv = {
    BROKER_TOKEN: TOKEN,
    BROKER_SERVER_URL: `http://127.0.0.1:${serverPort}`,
    BROKER_CLIENT_URL: `http://127.0.0.1:${clientPort}`,
    PORT: String(clientPort),
    ...(githubCom ? githubComClientEnv(originUrl) : { ACCEPT: files.client, ORIGIN_URL: originUrl }),
    PREFLIGHT_CHECKS_ENABLED: 'false',
    LOG_LEVEL: 'error',
    ...extra,
  };
  const ours = (name: string, command: string, env: Record<string, string | undefined>) =>
    kind === 'floor'
      ? group.spawnNode(name, FLOOR_SCRIPT, [command], env)
      : options.cli ? group.spawnNode(name, options.cli, [command], env) : group.broker(name, command, env);
  const server = kind === 'snyk-broker' ? await startSnykBroker(group, 'server', 'server', serverEnv) : ours('server', 'server', serverEnv);
  await waitFor('server health', async () => {
    const res = await request(`http://127.0.0.1:${serverPort}/healthcheck`);
    await res.body.dump();
    return res.statusCode === 200;
  }, { timeoutMs: 30_000, intervalMs: 100 });
  const client = kind === 'snyk-broker' ? await startSnykBroker(group, 'client', 'client', clientEnv) : ours('client', 'client', clientEnv);
  const platform = `http://127.0.0.1:${serverPort}/broker/${TOKEN}`;
  // The path measured must be relayed (200), not refused by the rules.
  await waitReady(platform, githubCom ? GITHUB_COM_PATH : '/small');
  return { name: options.name ?? kind, platform, client, server, stop: () => group.stopAll() };
}

/** Hung-tunnel counters of our server (probe misses and hedges); null for a server without them (snyk-broker, the floor, direct). */
export async function probeCounters(system: System): Promise<{ probeMisses: number; hedges: number } | null> {
  if (!system.server) return null;
  try {
    const res = await request(`${new URL(system.platform).origin}/metrics`, { headersTimeout: 5000, bodyTimeout: 5000 });
    const text = await res.body.text();
    if (res.statusCode !== 200 || !text.includes('broker_server_tunnel_probe_misses_total')) return null;
    let probeMisses = 0;
    let hedges = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith('broker_server_tunnel_probe_misses_total ')) probeMisses += Number(line.split(' ').at(-1)) || 0;
      if (line.startsWith('broker_server_relay_hedges_total{')) hedges += Number(line.split(' ').at(-1)) || 0;
    }
    return { probeMisses, hedges };
  } catch {
    return null;
  }
}
