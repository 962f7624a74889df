import type { EnvReader } from './env.js';

/** Snyk variables that change how the client talks to internal systems (issue 15, item 4). */
export interface DownstreamOptions {
  /** INSECURE_DOWNSTREAM: origins and the /systemcheck probe are called over plain http. */
  insecureDownstream: boolean;
  /** RES_BODY_URL_SUB: the Artifactory/Nexus URL rewritten in JSON answers (no trailing `/`). */
  resBodyUrlSub?: string;
  /** LOG_ENABLE_BODY: relayed request and response bodies go into debug log lines. */
  logEnableBody: boolean;
  /** DISABLE_SNIPPETS: the Snyk Code snippets rule is left out of the accept rules. */
  disableSnippets: boolean;
}

/**
 * RES_BODY_URL_SUB as Snyk's templates write it (`https://nexus.example/repository`, also
 * without a scheme): a host is required, http(s) only, and no credentials (package URLs in the
 * answers carry none, so such a value would never match).
 */
function readResBodyUrlSub(r: EnvReader): string | undefined {
  const raw = r.string('RES_BODY_URL_SUB');
  if (raw === undefined) return undefined;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw)?.[1]?.toLowerCase();
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    r.problem(`RES_BODY_URL_SUB must be an http(s) URL such as https://nexus.example.com/repository, got scheme ${scheme}:`);
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(scheme ? raw : `https://${raw.replace(/^\/\//, '')}`);
  } catch {
    r.problem(`RES_BODY_URL_SUB must be a URL such as https://nexus.example.com/repository, got ${JSON.stringify(raw.replace(/\/\/[^/@\s]*@/, '//***@'))}`);
    return undefined;
  }
  if (url.username || url.password) {
    r.problem('RES_BODY_URL_SUB must not contain credentials: give the URL that appears in the answers, e.g. https://nexus.example.com/repository');
    return undefined;
  }
  if (/\s/.test(raw)) {
    r.problem(`RES_BODY_URL_SUB must not contain spaces, got ${JSON.stringify(raw)}`);
    return undefined;
  }
  return raw.replace(/\/+$/, '');
}

export function readDownstreamOptions(r: EnvReader): DownstreamOptions {
  return {
    insecureDownstream: r.bool('INSECURE_DOWNSTREAM', false),
    resBodyUrlSub: readResBodyUrlSub(r),
    logEnableBody: r.bool('LOG_ENABLE_BODY', false),
    disableSnippets: r.bool('DISABLE_SNIPPETS', false),
  };
}
