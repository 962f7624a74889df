import type { Readable } from 'node:stream';
import type { Egress } from '../http/egress.js';
import type { Logger } from '../observability/logger.js';
import type { ResponseHead } from '../protocol/index.js';
import { VariableResolver, type RuleSet } from '../filters/index.js';
import type { ResponseWriter } from './response-writer.js';
import type { ClientMetrics } from './metrics.js';
import type { BodyUrlRewriter } from './res-body-url-sub.js';
import type { OriginCaller } from './origin-egress.js';
import type { CommitSigner } from './commit-signing/commit-signer.js';

export interface RelayOptions {
  rules: () => RuleSet;
  egress: Egress;
  writer: ResponseWriter;
  logger: Logger;
  metrics: ClientMetrics;
  wireVersion: string;
  maxAckResponseBytes: number;
  removeXForwardedHeaders: boolean;
  /** Values for `BROKER_VAR_SUB` / `x-broker-var-sub` substitution (the client's environment). */
  vars?: Record<string, string | undefined>;
  /** Reloads the accept rules (service command filters/reload). */
  reloadFilters?: () => Promise<void>;
  /** Universal Broker: syncs the connections with Snyk's API (service command config/reload). */
  reloadConfig?: () => void;
  /** Origin connect refusals are retried this many times (nothing was sent yet). */
  connectRetries?: number;
  connectRetryDelayMs?: number;
  /** Small answers go back over the tunnel when our server offers it (BROKER_CLIENT_TUNNEL_ANSWERS); default on. */
  tunnelAnswers?: boolean;
  /** Larger answers stream over the tunnel when our server offers it (BROKER_CLIENT_TUNNEL_STREAMS); default off. */
  tunnelStreams?: boolean;
  /** INSECURE_DOWNSTREAM: origins are called over plain http. */
  insecureDownstream?: boolean;
  /** RES_BODY_URL_SUB: rewrites package URLs in JSON answers. */
  bodyUrlRewriter?: BodyUrlRewriter;
  /** LOG_ENABLE_BODY: request and response bodies go into debug lines. */
  logBodies?: boolean;
  /** Variables whose values change while the client runs (a GitHub App's tokens), read when a matching rule uses them. */
  liveVars?: LiveVariables;
  /** GIT_COMMITTER_* / GPG_*: commits made through GitHub's Git Data API are signed (and symlink trees refused). */
  commitSigner?: CommitSigner;
  /**
   * Universal Broker contexts, by id: what a request naming one (x-snyk-broker-context-id, or
   * /ctx/<uuid>) uses instead of the connection's rules and values; a string says why it is off.
   */
  contexts?: ReadonlyMap<string, ContextOverrides | string>;
  /** Every request gets this answer, nothing is relayed (an unknown or disabled context). */
  refusal?: WholeAnswer;
}

/** What a context changes for its requests: the rules compiled with its values, and its App tokens and signer. */
export type ContextOverrides = Pick<RelayOptions, 'rules' | 'vars' | 'liveVars' | 'commitSigner'>;

/** Values the rules read at request time: `values()` waits for fresh ones, or rejects with why there are none. */
export interface LiveVariables {
  readonly names: ReadonlySet<string>;
  values(): Promise<Record<string, string>>;
}

/** One relay's options with their defaults resolved, built once and passed to every step of a request. */
export interface RelayContext extends OriginCaller {
  readonly opts: RelayOptions;
  readonly log: Logger;
  readonly vars: Record<string, string | undefined>;
  readonly varsResolver: VariableResolver;
  /** The context a request names (Universal Broker contexts); this one when it names none or contexts are not in use. */
  forContext(contextId: string | undefined): RelayContext;
}

export function relayContext(opts: RelayOptions): RelayContext {
  const vars = opts.vars ?? {};
  const ctx: RelayContext = {
    opts,
    log: opts.logger,
    egress: opts.egress,
    connectRetries: opts.connectRetries ?? 3,
    connectRetryDelayMs: opts.connectRetryDelayMs ?? 500,
    vars,
    varsResolver: new VariableResolver(vars),
    forContext: () => ctx,
  };
  return ctx;
}

/** What goes back to the broker server for a relayed request. */
export interface Answer {
  head: ResponseHead;
  body?: Readable | Buffer | string;
}

/** An answer with its body whole, never a stream: what an ack carries (one message). */
export interface WholeAnswer extends Answer {
  body?: Buffer | string;
}

export function brokerError(status: number, code: string, message: string, extra: Record<string, unknown> = {}): WholeAnswer {
  return {
    head: { status, errorType: code, headers: { 'content-type': 'application/json' } },
    body: JSON.stringify({ code, message, ...extra }),
  };
}
