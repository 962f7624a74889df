import type { ClientConfig } from '../config/client.js';
import type { Env } from '../config/env.js';
import { loadAccept } from '../config/accept.js';
import { compileRules, type AcceptFile, type RuleSet } from '../filters/index.js';
import type { Logger, SecretScrubber } from '../observability/logger.js';

/**
 * The client's accept rules as they are now: the document (sent in identify, served on
 * /filters), the compiled private rules (relay) and public rules (webhooks); `reload` reads the
 * accept file again (POST /filters/reload, the service command).
 */
export class ClientFilters {
  accept: AcceptFile;
  privateRules: RuleSet;
  publicRules: RuleSet;

  constructor(
    private readonly config: ClientConfig,
    private readonly deps: { env: Env; logger: Logger; scrubber?: SecretScrubber },
  ) {
    this.accept = config.accept;
    this.privateRules = config.privateRules;
    this.publicRules = config.publicRules;
  }

  readonly reload = async (): Promise<void> => {
    const { config } = this;
    const { env, logger, scrubber } = this.deps;
    const { accept: next } = await loadAccept(config.acceptSource, env, { githubApp: config.githubApp !== undefined, commitSigning: config.commitSigning !== undefined, universalType: config.universalType });
    const nextPrivate = compileRules(next.private, env, `accept rules ${config.acceptPath} (private rules)`);
    const nextPublic = compileRules(next.public, env, `accept rules ${config.acceptPath} (public rules)`);
    // New rules may reference new credentials: scrub them before anything can log them.
    scrubber?.add(...nextPrivate.secrets(), ...nextPublic.secrets());
    this.accept = next;
    this.privateRules = nextPrivate;
    this.publicRules = nextPublic;
    logger.info({ private: next.private.length, public: next.public.length }, 'accept rules reloaded');
  };
}
