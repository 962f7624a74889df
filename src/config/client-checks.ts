import type { EnvReader } from './env.js';
import { checkCaBundle, checkEgressVariables } from './files.js';

/** Variables the client reads later or elsewhere, checked at start so a bad value is reported with the others. */
export async function checkLaterVariables(r: EnvReader): Promise<void> {
  // Checked here (used elsewhere) so a typo stops the start with exit 2 instead of failing later.
  await checkCaBundle(r, 'CA_CERT');
  await checkEgressVariables(r);
  for (const name of ['DISABLE_BODY_VARS_SUBSTITUTION', 'DISABLE_HEADER_VARS_SUBSTITUTION']) r.bool(name, false);
  for (const name of ['BROKER_HEALTHCHECK_PATH', 'BROKER_SYSTEMCHECK_PATH']) {
    const path = r.string(name);
    if (path !== undefined && !path.startsWith('/')) r.problem(`${name} must be a path starting with "/", got ${JSON.stringify(path)}`);
  }
  r.enumOf('BROKER_CLIENT_VALIDATION_METHOD', ['get', 'head', 'post', 'put', 'patch', 'delete', 'options'] as const, 'get');
}
