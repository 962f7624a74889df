import type { AcceptFile, AcceptRule } from './types.js';

/**
 * snyk-broker's start-time rule injection (ACCEPT_IAC, ACCEPT_LARGE_MANIFESTS, ACCEPT_CODE/ACCEPT_GIT,
 * ACCEPT_APPRISK/ACCEPT_ESSENTIALS, ACCEPT_CUSTOM_PR_TEMPLATES), with the same result for Snyk's
 * templates (test/unit/filters-inject.test.ts compares with the pinned package's own loader).
 * Snyk applies it only to its default accept file (ACCEPT=accept.json), never to a custom one.
 */

const IAC_EXTENSIONS = ['tf', 'yaml', 'yml', 'tpl', 'json'];
const IAC_ORIGINS = ['GITLAB', 'AZURE_REPOS_HOST', 'GITHUB_API', 'BITBUCKET_API'];
const CODE_ORIGINS = ['GITLAB', 'AZURE_REPOS_HOST', 'GITHUB', 'BITBUCKET'];
const SNIPPET_ORIGINS = ['GITLAB', 'AZURE_REPOS_HOST', 'GITHUB_API', 'BITBUCKET_API'];

export type InjectVars = Record<string, string | undefined>;

export interface InjectNote {
  level: 'info' | 'warn';
  message: string;
}

/** Snyk's switch test: the first non-empty value among the names is on unless it is exactly "false". */
function switchValue(vars: InjectVars, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = vars[n];
    if (v) return v === 'false' ? undefined : v;
  }
  return undefined;
}

const copy = <T>(x: T): T => structuredClone(x);
const usesOrigin = (rule: AcceptRule, names: string[]) => names.some((n) => rule.origin?.includes(`{${n}}`) ?? false);

function injectIac(rules: AcceptRule[], value: string, notes: InjectNote[]): void {
  const extensions = value.replace(/\s/g, '').split(',').filter((e) => IAC_EXTENSIONS.includes(e));
  if (extensions.length === 0) {
    notes.push({ level: 'warn', message: `ACCEPT_IAC=${JSON.stringify(value)} names none of ${IAC_EXTENSIONS.join(', ')}: no IaC rules added` });
    return;
  }
  if (!rules[0]?.origin?.includes('AZURE')) {
    // The manifest rules for requirements files, widened to each IaC extension.
    const base = copy(rules.filter((r) => r.method === 'GET' && r.path.includes('requirements') && usesOrigin(r, IAC_ORIGINS)));
    if (base.length < 2) {
      notes.push({ level: 'warn', message: 'ACCEPT_IAC is set but these accept rules have no requirements-file rules to widen: no IaC rules added' });
      return;
    }
    for (const r of base) {
      r.path = r.path.replace('/requirements', '').replace('%2Frequirements', '');
      if (typeof r['//'] === 'string') r['//'] = r['//'].replace('determine the full dependency tree', 'scan IAC files');
    }
    for (const ext of extensions) {
      const set = copy(base);
      set[0].path = set[0].path.replace('txt', ext);
      set[1].path = set[1].path.replace('txt', ext);
      rules.push(...set);
    }
  } else {
    // Azure Repos: the requirements rules' own file-pattern lists grow (on copies of those rules).
    rules.forEach((r, i) => {
      const first0 = r.valid?.[0] as { values?: string[] } | undefined;
      if (r.method !== 'GET' || !first0?.values?.includes('**/requirements/*.txt')) return;
      const rule = (rules[i] = copy(r));
      const first = rule.valid![0] as { values: string[] };
      for (const ext of extensions) first.values.push(`**/*.${ext}`, `**%2F*.${ext}`);
    });
  }
  notes.push({ level: 'info', message: `added accept rules for IaC files (${extensions.join(', ')})` });
}

function injectLargeManifests(rules: AcceptRule[], notes: InjectNote[]): void {
  const scm = CODE_ORIGINS.find((o) => rules[0]?.origin?.includes(o));
  if (scm !== 'GITHUB') {
    notes.push({ level: 'warn', message: 'ACCEPT_LARGE_MANIFESTS applies to GitHub only: no rule added' });
    return;
  }
  rules.push({ '//': 'used to get given manifest file', method: 'GET', path: '/repos/:owner/:repo/git/blobs/:sha', origin: 'https://${GITHUB_TOKEN}@${GITHUB_API}' });
  notes.push({ level: 'info', message: 'added the accept rule for large manifest files' });
}

function injectCode(rules: AcceptRule[], disableSnippets: boolean, notes: InjectNote[]): void {
  const found = rules.find((r) => r.method === 'GET' && usesOrigin(r, CODE_ORIGINS));
  if (!found) return;
  const get = copy(found);
  const scm = CODE_ORIGINS.find((o) => get.origin!.includes(o));
  get['//'] = 'allow info refs (for git clone)';
  get.origin = get.origin!.replace('https://${GITHUB_TOKEN}', 'https://pat:${GITHUB_TOKEN}').replace('https://${GITLAB}', 'https://oauth2:${GITLAB_TOKEN}@${GITLAB}');
  if (get.origin === 'https://${GITHUB}' && get.auth?.token === '${GHA_ACCESS_TOKEN}') {
    // GitHub App: the token goes in the origin's userinfo for git.
    get.origin = 'https://x-access-token:${GHA_ACCESS_TOKEN}@${GITHUB}';
    delete get.auth;
  } else if (get.origin === 'https://${GITHUB}' && !get.auth) {
    // github-server-app's template: snyk-broker 5.22.14 stops at start here (it reads auth.token).
    notes.push({ level: 'warn', message: 'ACCEPT_CODE with the github-server-app rules: the git rules carry no credential (snyk-broker itself fails to start with this combination)' });
  }
  const post = copy(get);
  post.method = 'POST';
  post['//'] = 'allow git-upload-pack (for git clone)';
  const snippetBase = rules.find((r) => r.method === 'GET' && SNIPPET_ORIGINS.some((o) => (r.origin?.includes(`{${o}}`) ?? false) && r.auth?.token !== '${JWT_TOKEN}'));
  if (!snippetBase) {
    notes.push({ level: 'warn', message: 'ACCEPT_CODE is set but these accept rules have no API rule to derive Snyk Code rules from: none added' });
    return;
  }
  const snippets = copy(snippetBase);
  snippets['//'] = 'needed to load code snippets';
  const snippetPaths: Record<string, string> = {
    AZURE_REPOS_HOST: '/:owner/_apis/git/repositories/:repo/items',
    GITHUB: '/repos/:name/:repo/contents/:path',
    GITLAB: '/api/v4/projects/:project/repository/files/:path',
    BITBUCKET: '/projects/:project/repos/:repo/browse*/:file',
  };
  if (scm) {
    get.path = '*/info/refs*';
    post.path = '*/git-upload-pack';
    snippets.path = snippetPaths[scm]!;
    if (scm === 'AZURE_REPOS_HOST') delete snippets.valid;
    if (scm === 'BITBUCKET') get.origin = post.origin = 'https://${BITBUCKET_GIT}';
  } else {
    notes.push({ level: 'warn', message: 'ACCEPT_CODE: cannot tell the SCM type of these accept rules; Snyk Code rules added unchanged' });
  }
  rules.push(get, post, ...(disableSnippets ? [] : [snippets]));
  notes.push({ level: 'info', message: `added accept rules for Snyk Code (git clone${disableSnippets ? '' : ', code snippets'})` });
}

/**
 * The accept rules with snyk-broker's injections applied (a new object; `file` is not changed).
 * `notes` says what was added or why not, for the start log.
 */
export function injectAcceptRules(file: AcceptFile, vars: InjectVars): { accept: AcceptFile; notes: InjectNote[] } {
  // The lists are new; a rule is copied before it is changed, so `file` stays as it is.
  const accept: AcceptFile = { private: [...file.private], public: [...file.public] };
  const rules = accept.private;
  const notes: InjectNote[] = [];
  const iac = switchValue(vars, 'ACCEPT_IAC');
  if (iac) injectIac(rules, iac, notes);
  if (switchValue(vars, 'ACCEPT_LARGE_MANIFESTS')) injectLargeManifests(rules, notes);
  // DISABLE_SNIPPETS: snyk-broker turns snippets off for any non-empty value, even "false"; the
  // client's config refuses anything but true/yes/1 or false/no/0 (exit 2), and ours honours false.
  const snippetsOff = Boolean(vars.DISABLE_SNIPPETS) && !/^(false|no|0)$/i.test(vars.DISABLE_SNIPPETS!);
  if (switchValue(vars, 'ACCEPT_CODE', 'ACCEPT_GIT')) injectCode(rules, snippetsOff, notes);
  // AppRisk and custom-PR-template rules come from files (defaultFilters/) that the snyk-broker
  // npm package does not ship, so its loader adds nothing for them either.
  for (const [name, alt] of [['ACCEPT_APPRISK', 'ACCEPT_ESSENTIALS'], ['ACCEPT_CUSTOM_PR_TEMPLATES', undefined]] as const) {
    if (switchValue(vars, name, ...(alt ? [alt] : []))) notes.push({ level: 'warn', message: `${name}${alt ? `/${alt}` : ''} is set, but its extra rules are not in the snyk-broker package these templates come from: no rules added` });
  }
  // Injected paths such as `*/info/refs*` get their leading '/', as snyk-broker's filter loader does.
  rules.forEach((r, i) => {
    if (!r.path.startsWith('/')) rules[i] = { ...r, path: `/${r.path}` };
  });
  return { accept, notes };
}
