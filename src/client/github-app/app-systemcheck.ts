import type { GithubAppConfig } from '../../config/github-app.js';
import type { Egress } from '../../http/egress.js';
import { describeError } from '../../http/errors.js';
import { GITHUB_REST_HEADERS, type InstallationTokens } from './installation-token.js';

/**
 * /systemcheck's proof that the App's token works: a valid installation token is had (or
 * refreshed) and GitHub accepts it for `GET /installation/repositories` (one repository).
 */
export async function checkGithubApp(app: GithubAppConfig, tokens: InstallationTokens, egress: Egress, timeoutMs: number): Promise<Record<string, unknown>> {
  const url = `${app.apiBaseUrl}/installation/repositories?per_page=1`;
  const result: Record<string, unknown> = { githubApp: { appId: app.appId, installationId: app.installationId, api: app.apiBaseUrl }, githubAppValidationUrl: url };
  try {
    const { GHA_ACCESS_TOKEN } = await tokens.values();
    const r = await egress.request(url, {
      method: 'GET',
      headers: { ...GITHUB_REST_HEADERS, authorization: `Bearer ${GHA_ACCESS_TOKEN}` },
      signal: AbortSignal.timeout(timeoutMs),
    });
    await r.body.dump();
    result.githubAppValidationUrlStatusCode = r.statusCode;
    result.ok = r.statusCode >= 200 && r.statusCode < 300;
    if (!result.ok) result.error = r.statusCode === 401 || r.statusCode === 403 ? 'GitHub refused the App installation token' : `Status code is not 2xx (${r.statusCode})`;
  } catch (err) {
    result.ok = false;
    result.error = describeError(err);
  }
  result.tokenExpiresAt = tokens.expiresAt ?? null;
  return result;
}
