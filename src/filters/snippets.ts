import type { AcceptFile, AcceptRule } from './types.js';

/**
 * DISABLE_SNIPPETS (snyk-broker 5.22.14): with ACCEPT_CODE, snyk-broker injects a rule that lets
 * Snyk Code read single files to show code snippets (`"//": "needed to load code snippets"`);
 * DISABLE_SNIPPETS leaves that one rule out (git clone rules stay). Injection only happens with
 * the default accept.json, so only that file is filtered here; the ACCEPT_CODE injection may
 * also skip the rule itself (`SNIPPETS_RULE_COMMENT`).
 */
export const SNIPPETS_RULE_COMMENT = 'needed to load code snippets';

export function isSnippetsRule(rule: AcceptRule): boolean {
  return rule['//'] === SNIPPETS_RULE_COMMENT;
}

/** The accept file without the snippets rule; the same object when there is none. */
export function withoutSnippetsRules(accept: AcceptFile): { accept: AcceptFile; removed: number } {
  const kept = accept.private.filter((r) => !isSnippetsRule(r));
  const removed = accept.private.length - kept.length;
  return removed === 0 ? { accept, removed } : { accept: { ...accept, private: kept }, removed };
}
