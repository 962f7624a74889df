// A private "project root" for running the real snyk-broker client in Universal Broker mode
// without touching the shared node_modules (universal-broker.md, "Packaging gotcha").
//
// The npm package ships only dist/ and finds its project root by walking up from __dirname to
// the first directory holding config.default.json (dist/lib/hybrid-sdk/common/config/config.js
// findProjectRoot). Universal mode needs Snyk's full config.default.json and defaultFilters/
// there, and writes config.universal.json there at runtime. The layout built here:
//
//   <root>/config.default.json                 Snyk's (from SNYK_BROKER_DATA_DIR)
//   <root>/defaultFilters/                     Snyk's (copied)
//   <root>/node_modules/snyk-broker/package.json, dist/   real copies (so __dirname is under <root>)
//   <root>/node_modules/snyk-broker/node_modules -> the package's nested deps (symlink)
//   <root>/node_modules/<every other dep>      -> the shared node_modules/<dep> (symlinks)
//
// node resolves a symlinked module by its real path, so each dependency still finds its own
// dependencies in the shared tree; only snyk-broker's own files live under <root>, and the
// walk up from them stops at <root>. Run the CLI with cwd = <root>: the apprisk and
// customPrTemplates filters are checked with fs.existsSync relative to the cwd.
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, SNYK_BROKER_DATA_DIR, SNYK_BROKER_DIR } from './paths.js';
import { snykBrokerNode } from './snyk-broker.js';
import type { ProcessGroup, RunningProcess } from './processes.js';

/** Why the real Universal client cannot run here, or undefined when it can. */
export const SNYK_UNIVERSAL_SKIP: string | false =
  SNYK_BROKER_DATA_DIR && existsSync(join(SNYK_BROKER_DATA_DIR, 'config.default.json'))
    ? false
    : "no snyk-broker-data (../shared or SNYK_BROKER_DATA_DIR): the npm package lacks Snyk's config.default.json and defaultFilters/, without which it cannot run in Universal mode";

export interface SnykUniversalRoot {
  /** The project root findProjectRoot finds; also the cwd to run in. */
  readonly dir: string;
  /** The copied CLI (dist/cli/index.js). */
  readonly cli: string;
  /** Where the client writes its connections (config.universal.json). */
  readonly universalConfigFile: string;
  /** Starts the real snyk-broker `client` from this root on the Node it needs (snykBrokerNode()). */
  startClient(group: ProcessGroup, name: string, env: Record<string, string | undefined>): RunningProcess;
  remove(): Promise<void>;
}

export async function makeSnykUniversalRoot(): Promise<SnykUniversalRoot> {
  if (!SNYK_BROKER_DATA_DIR) throw new Error(String(SNYK_UNIVERSAL_SKIP));
  const dir = await mkdtemp(join(tmpdir(), 'snyk-ub-root-'));
  try {
    const pkg = join(dir, 'node_modules', 'snyk-broker');
    await mkdir(pkg, { recursive: true });
    await cp(join(SNYK_BROKER_DIR, 'dist'), join(pkg, 'dist'), { recursive: true });
    await cp(join(SNYK_BROKER_DIR, 'package.json'), join(pkg, 'package.json'));
    const nested = join(SNYK_BROKER_DIR, 'node_modules');
    if (existsSync(nested)) await symlink(realpathSync(nested), join(pkg, 'node_modules'), 'dir');
    const shared = realpathSync(join(REPO_ROOT, 'node_modules'));
    for (const entry of await readdir(shared)) {
      if (entry === 'snyk-broker' || entry.startsWith('.')) continue;
      await symlink(join(shared, entry), join(dir, 'node_modules', entry));
    }
    await cp(join(SNYK_BROKER_DATA_DIR, 'config.default.json'), join(dir, 'config.default.json'));
    await cp(join(SNYK_BROKER_DATA_DIR, 'defaultFilters'), join(dir, 'defaultFilters'), { recursive: true });
    const cli = join(pkg, 'dist', 'cli', 'index.js');
    verifyRoot(dir, pkg);
    return {
      dir,
      cli,
      universalConfigFile: join(dir, 'config.universal.json'),
      startClient: (group, name, env) => group.spawnNode(name, cli, ['client'], env, snykBrokerNode(), { cwd: dir }),
      remove: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The copied package must load its dependencies and find `dir` as its project root; a wrong
 * layout would otherwise show up as a confusing startup failure of the client.
 */
function verifyRoot(dir: string, pkg: string): void {
  const script = `
    const cfg = require(${JSON.stringify(join(pkg, 'dist/lib/hybrid-sdk/common/config/config.js'))});
    require(${JSON.stringify(join(pkg, 'dist/lib/hybrid-sdk/client/socket.js'))});
    process.stdout.write(cfg.findProjectRoot(${JSON.stringify(join(pkg, 'dist/lib/hybrid-sdk/common/config'))}));`;
  const out = spawnSync(snykBrokerNode(), ['-e', script], { cwd: dir, encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH, HOME: process.env.HOME } });
  if (out.status !== 0 || out.stdout !== dir) {
    throw new Error(`the private snyk-broker root at ${dir} does not work (exit ${out.status}): stdout ${out.stdout} stderr ${out.stderr.slice(-2000)}`);
  }
}
