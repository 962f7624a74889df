import assert from 'node:assert/strict';
import { ConfigError } from '../../src/config/errors.js';

/** The problems a config loader reports for `env` (it must throw a ConfigError, as at exit code 2). */
export async function configProblems<E>(load: (env: E) => Promise<unknown>, env: E): Promise<string[]> {
  try {
    await load(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `not a ConfigError: ${err}`);
    return err.problems;
  }
  assert.fail('no ConfigError');
}
