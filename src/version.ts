import { readFileSync } from 'node:fs';

/** The package version, reported as the client version on the wire and in /healthcheck. */
export const VERSION: string = (() => {
  // dist/version.js and build/src/version.js sit at different depths below package.json.
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ha-broker' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
})();
