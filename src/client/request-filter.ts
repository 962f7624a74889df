import { FAILURE_HEADER } from '../http/server-helpers.js';
import { FAILURES } from '../protocol/failures.js';
import type { RelayRequest } from '../protocol/index.js';
import { RuleSet, type AcceptRule, type FilterResult } from '../filters/index.js';
import { brokerError, type LiveVariables, type RelayContext, type WholeAnswer } from './relay-context.js';

/** A request a private accept rule lets through, with the origin to call. */
export type Authorized = Extract<FilterResult, { allowed: true }> & { targetUrl: string };

/**
 * Matches a request from the broker server against the private accept rules: the match (its
 * origin, credential and variables), or the refusal to answer with.
 */
export function authorize(ctx: RelayContext, req: RelayRequest, requestId: string): Authorized | WholeAnswer | Promise<Authorized | WholeAnswer> {
  if (ctx.opts.refusal) {
    ctx.log.warn({ requestId, method: req.method, url: req.url }, 'refused a request for a context this connection cannot serve');
    return ctx.opts.refusal;
  }
  const rules = ctx.opts.rules();
  const found = rules.find({ method: req.method, url: req.url, headers: req.headers, body: req.body });
  if (!('rule' in found)) return checked(ctx, req, requestId, found);
  const live = ctx.opts.liveVars;
  // Only a rule that reads a live variable waits for it (the others never depend on a token refresh).
  if (live && RuleSet.uses(found.rule, live.names)) return withLiveValues(ctx, req, requestId, rules, found.rule, live);
  return checked(ctx, req, requestId, rules.resolve(found.rule, req.url));
}

/** The rule resolved with the live variables' current values; none to be had is a 503 naming why. */
async function withLiveValues(ctx: RelayContext, req: RelayRequest, requestId: string, rules: RuleSet, rule: AcceptRule, live: LiveVariables): Promise<Authorized | WholeAnswer> {
  let values: Record<string, string>;
  try {
    values = await live.values();
  } catch (err) {
    const f = FAILURES.GITHUB_APP_TOKEN_UNAVAILABLE;
    ctx.log.error({ requestId, method: req.method, url: req.url, err: (err as Error).message }, 'no valid GitHub App token for a request that needs one; not sent');
    const answer = brokerError(f.status, f.code, (err as Error).message);
    answer.head.headers![FAILURE_HEADER] = f.reason;
    return answer;
  }
  return checked(ctx, req, requestId, rules.resolve(rule, req.url, values));
}

function checked(ctx: RelayContext, req: RelayRequest, requestId: string, result: FilterResult): Authorized | WholeAnswer {
  const log = ctx.log;
  if (!result.allowed) {
    log.warn({ requestId, method: req.method, url: req.url, reason: result.reason }, 'blocked a request from the broker server (no private accept rule matches)');
    return brokerError(401, 'FILTER_BLOCKED', 'blocked', { reason: '[Websocket Flow][Blocked Request] Does not match any accept rule', url: req.url });
  }
  if (result.unsetOriginVariables) {
    const names = result.unsetOriginVariables.join(', ');
    log.warn({ requestId, url: req.url, unsetVariables: result.unsetOriginVariables }, 'matching private rule has an empty origin: its variables are unset');
    const unset = FAILURES.ORIGIN_VARIABLE_UNSET;
    const answer = brokerError(unset.status, unset.code, `the matching accept rule's origin needs ${names}, which ${result.unsetOriginVariables.length === 1 ? 'is' : 'are'} not set on the broker client`);
    answer.head.headers![FAILURE_HEADER] = `${unset.reason}: ${names}`;
    return answer;
  }
  if (!result.targetUrl) {
    log.warn({ requestId, url: req.url }, 'matching private rule has no origin');
    return brokerError(502, 'DOWNSTREAM_ERROR', 'matching accept rule has no origin');
  }
  return result as Authorized;
}
