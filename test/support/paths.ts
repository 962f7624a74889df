import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** Repository root, from build/test/support/paths.js. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The shipped CLI (npm test builds dist/ first). */
export const CLI = join(REPO_ROOT, 'dist', 'cli.js');
export const SNYK_BROKER_DIR = join(REPO_ROOT, 'node_modules', 'snyk-broker');
export const SNYK_BROKER_CLI = join(SNYK_BROKER_DIR, 'dist', 'cli', 'index.js');
