import type { VariableResolver } from './variables.js';

/** One entry of a rule's `valid` list (Snyk's accept.json format). */
export type ValidEntry =
  | { path: string; value: unknown }
  | { path: string; regex: string }
  | { queryParam: string; values: string[] }
  | { header: string; values: string[] };

export interface RuleAuth {
  /** The known schemes stay as editor hints; `string & {}` keeps any other name allowed. */
  scheme: 'bearer' | 'token' | 'basic' | 'raw' | (string & {});
  token?: string;
  username?: string;
  password?: string;
}

export interface AcceptRule {
  '//'?: string;
  method?: string;
  path: string;
  origin?: string;
  auth?: RuleAuth;
  valid?: ValidEntry[];
  [extra: string]: unknown;
}

export interface AcceptFile {
  private: AcceptRule[];
  public: AcceptRule[];
}

/** What a rule is matched against: the request as it arrives (url = path + query). */
export interface FilterRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body?: Buffer | string;
}

export type FilterResult =
  | {
      allowed: true;
      rule: AcceptRule;
      /** The rule's origin with ${VAR}s substituted and credentials removed, joined with the url. */
      targetUrl?: string;
      /** The credential to send as the Authorization header, from `auth` or the origin's userinfo. */
      authorization?: string;
      /** The variables as this request saw them (pooled ones pinned): BROKER_VAR_SUB / x-broker-var-sub use the same. */
      variables?: VariableResolver;
      /** Set when the rule's origin is not a URL because these variables are unset (answer 502). */
      unsetOriginVariables?: string[];
    }
  | { allowed: false; reason: string };
