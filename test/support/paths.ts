import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { existsSync } from 'node:fs';

/** Repository root, from build/test/support/paths.js. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The shipped CLI (npm test builds dist/ first). */
export const CLI = join(REPO_ROOT, 'dist', 'cli.js');
export const SNYK_BROKER_DIR = join(REPO_ROOT, 'node_modules', 'snyk-broker');
export const SNYK_BROKER_CLI = join(SNYK_BROKER_DIR, 'dist', 'cli', 'index.js');
/**
 * Snyk's data files the npm package lacks (../shared/snyk-broker-data beside the checkout, or
 * SNYK_BROKER_DATA_DIR): reference for tests only, never copied into the repository. Undefined
 * when absent (a fresh clone elsewhere): the tests that compare with them are skipped then.
 */
export const SNYK_BROKER_DATA_DIR: string | undefined = [process.env.SNYK_BROKER_DATA_DIR, join(REPO_ROOT, '..', 'shared', 'snyk-broker-data')].find(
  (d): d is string => typeof d === 'string' && d !== '' && existsSync(join(d, 'defaultFilters')),
);
