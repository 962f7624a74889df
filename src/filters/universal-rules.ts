import type { AcceptFile, AcceptRule } from './types.js';

const GITLAB = 'https://${GITLAB}';
const GITLAB_FILES = '/api/v4/projects/:project/repository/files*';

/** Read, create and update a pnpm lock file: the path written both ways GitLab's API is called. */
function gitlabPnpmRules(): AcceptRule[] {
  const rules: AcceptRule[] = [];
  for (const [method, why] of [['GET', 'used to determine the full dependency tree'], ['POST', 'used to create manifest file'], ['PUT', 'used to update manifest file']] as const) {
    for (const sep of ['/', '%2F']) rules.push({ '//': why, method, path: `${GITLAB_FILES}${sep}pnpm-lock.yaml`, origin: GITLAB });
  }
  return rules;
}

/**
 * Rules Snyk's Universal rule files have for a type and the package's classic template does not
 * (snyk-broker 5.22.14's defaultFilters, same methods, paths and origins): a Universal connection
 * gets them, so the platform's requests for it pass as they pass Snyk's client.
 * test/unit/universal-rules.test.ts keeps the list exact.
 */
const ADDITIONS: Readonly<Record<string, readonly AcceptRule[]>> = Object.freeze({
  gitlab: gitlabPnpmRules(),
  nexus: [{ method: 'GET', path: '/nexus/service/local/status', origin: '${BASE_NEXUS_URL}' }],
});

/** The private rules with the Universal additions for `type` after them (the template's own rules match first). */
export function withUniversalRules(file: AcceptFile, type: string): AcceptFile {
  const extra = ADDITIONS[type];
  if (!extra || extra.length === 0) return file;
  return { ...file, private: [...file.private, ...extra.map((r) => structuredClone(r))] };
}
