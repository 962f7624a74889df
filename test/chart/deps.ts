// Locating the repository and the test-only npm packages the chart tests use.
//
// The packages are devDependencies of the project; they are loaded at run time (not imported
// statically) so the rest of the test build compiles even where they are not installed yet, and
// a missing one fails the test that needs it with a clear message.
// HA_BROKER_TEST_DEPS_DIR may name an extra directory holding node_modules/ (for trying the tests
// before the devDependencies are installed); the repository's own node_modules come first.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Repository root (this file is compiled to build/test/chart/). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const chartDir = join(repoRoot, 'charts', 'ha-broker');

function searchDirs(): string[] {
  const dirs = [repoRoot];
  const extra = process.env.HA_BROKER_TEST_DEPS_DIR;
  if (extra) dirs.push(extra);
  return dirs;
}

export interface Resolved {
  /** Absolute path of the resolved file. */
  path: string;
  /** Directory whose node_modules held the package. */
  baseDir: string;
}

/** Resolves a package (sub)path the way require() would, from the repository root first. */
export function resolveDep(spec: string): Resolved {
  const tried: string[] = [];
  for (const dir of searchDirs()) {
    try {
      const path = createRequire(join(dir, 'package.json')).resolve(spec);
      return { path, baseDir: dir };
    } catch {
      tried.push(dir);
    }
  }
  const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
  throw new Error(
    `npm package ${pkg} is not installed (looked from ${tried.join(', ')}); it is a devDependency of the chart tests: run npm ci`,
  );
}

/** Directory of an installed package (the one holding its package.json). */
export function packageDir(pkg: string): string {
  let dir = dirname(resolveDep(pkg).path);
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && dir.replace(/\\/g, '/').endsWith(`node_modules/${pkg}`)) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the directory of package ${pkg}`);
    dir = up;
  }
}

/** Imports a package (sub)path resolved by resolveDep. */
export async function importDep<T = Record<string, unknown>>(spec: string): Promise<T> {
  return (await import(pathToFileURL(resolveDep(spec).path).href)) as T;
}
