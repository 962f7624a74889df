import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from '../../http/errors.js';
import type { Logger } from '../../observability/logger.js';
import type { BrokerConnection } from '../broker-connection.js';
import { isRunnable, type ConnectionPlan, type RunnablePlan } from './connection-env.js';

/** A connection with tunnels: what it was built from, and its parts. */
export interface RunningConnection {
  plan: RunnablePlan;
  connection: BrokerConnection;
  /** Stops what the builder started beside the connection (auth renewal). */
  stopExtras(): void;
}

export interface ConnectionRegistryDeps {
  logger: Logger;
  /** Builds and starts a connection's tunnels; throws when its configuration is unusable. */
  build(plan: RunnablePlan): Promise<RunningConnection>;
  /** How long a replaced connection's tunnels keep serving while the new ones open (default 30 s). */
  replaceReadyMs?: number;
}

/** What decides whether a running connection must be rebuilt: its definition (else its identifier and every value it was built from). */
function fingerprint(plan: RunnablePlan): string {
  if (plan.definition !== undefined) return plan.definition;
  return JSON.stringify([plan.identifier, plan.filterType, Object.entries(plan.env).sort(([a], [b]) => (a < b ? -1 : 1))]);
}

/**
 * The deployment's connections that have tunnels, reconciled by name with each new list (Snyk's
 * synchronizer): added ones start, removed or disabled ones drain, a rotated identifier or changed
 * values get a new connection whose tunnels are ready before the old one drains, so a connection's
 * traffic keeps a tunnel throughout and untouched connections are never touched.
 */
export class ConnectionRegistry {
  readonly running = new Map<string, RunningConnection>();
  readonly #fingerprints = new Map<string, string>();
  /** The last reason each disabled connection was logged with (said once, not every sync). */
  readonly #disabled = new Map<string, string>();
  /** Bumped each time a connection is removed: a build that started before does not bring it back. */
  readonly #removals = new Map<string, number>();
  #stopped = false;
  /** Replaced connections still serving while their successors open (a stop waits for their drain). */
  readonly #handovers = new Set<Promise<void>>();

  constructor(private readonly deps: ConnectionRegistryDeps) {}

  /** Applies one list of plans: every change is made before this resolves. */
  async apply(plans: readonly ConnectionPlan[]): Promise<void> {
    const log = this.deps.logger;
    const seen = new Set<string>();
    const work: Promise<void>[] = [];
    for (const plan of plans) {
      if (seen.has(plan.name)) {
        log.warn({ connection: plan.name }, 'two connections share this name: the second is ignored');
        continue;
      }
      seen.add(plan.name);
      if (!isRunnable(plan)) {
        if (this.#disabled.get(plan.name) !== plan.disabled) (plan.unused ? log.info : log.warn).call(log, { connection: plan.name, type: plan.type }, plan.disabled);
        this.#disabled.set(plan.name, plan.disabled);
        work.push(this.#remove(plan.name, 'disabled'));
        continue;
      }
      this.#disabled.delete(plan.name);
      const print = fingerprint(plan);
      const current = this.running.get(plan.name);
      if (current && this.#fingerprints.get(plan.name) === print) continue;
      const why = !current ? 'added' : current.plan.identifier !== plan.identifier ? 'identifier rotated' : 'configuration changed';
      work.push(this.#replace(plan, print, why));
    }
    for (const name of this.running.keys()) if (!seen.has(name)) work.push(this.#remove(name, 'removed from the deployment'));
    for (const name of this.#disabled.keys()) if (!seen.has(name)) this.#disabled.delete(name);
    await Promise.all(work);
  }

  /** Builds the connection anew (renewals keep failing): the new tunnels open before the old drain. */
  async restart(name: string, reason: string): Promise<void> {
    const current = this.running.get(name);
    if (!current || this.#stopped) return;
    this.deps.logger.warn({ connection: name, reason }, 'restarting the connection');
    await this.#replace(current.plan, fingerprint(current.plan), reason);
  }

  /** Drains every connection (SIGTERM). */
  async stopAll(reason: string): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.running.keys()].map((name) => this.#remove(name, reason, reason)));
    await Promise.all([...this.#handovers]);
  }

  async #replace(plan: RunnablePlan, print: string, why: string): Promise<void> {
    if (this.#stopped) return;
    const log = this.deps.logger;
    const removals = this.#removals.get(plan.name) ?? 0;
    let next: RunningConnection;
    try {
      next = await this.deps.build(plan);
    } catch (err) {
      log.error({ connection: plan.name, type: plan.type, err: describeError(err) }, 'connection cannot start: its configuration is unusable');
      // A broken new configuration leaves a running old one alone: its traffic still works.
      return;
    }
    if (this.#stopped) {
      await stop(next, 'stop');
      return;
    }
    // Removed or disabled while this was built (a restart racing a sync): it must stay gone.
    if ((this.#removals.get(plan.name) ?? 0) !== removals) {
      await stop(next, 'removed');
      return;
    }
    const old = this.running.get(plan.name);
    this.running.set(plan.name, next);
    this.#fingerprints.set(plan.name, print);
    log.info({ connection: plan.name, type: plan.type, filterType: plan.filterType, why }, 'connection started');
    if (!old) return;
    // The old tunnels carry the traffic until a new one is ready (its renewals stop now: a
    // replaced connection is never restarted). A new one that cannot open in time does not keep
    // the old forever: the old drains after the deadline as it would have at once.
    old.stopExtras();
    const handover = (async () => {
      const ready = await this.#whenReady(next, Date.now() + (this.deps.replaceReadyMs ?? 30_000));
      if (!ready && !this.#stopped) log.warn({ connection: plan.name, waitedMs: this.deps.replaceReadyMs ?? 30_000 }, 'the new tunnels are not ready yet: draining the old ones anyway');
      await stop(old, why === 'identifier rotated' ? 'rotated' : 'replaced');
    })();
    this.#handovers.add(handover);
    try {
      await handover;
    } finally {
      this.#handovers.delete(handover);
    }
  }

  async #whenReady(c: RunningConnection, deadline: number): Promise<boolean> {
    while (!c.connection.isReady()) {
      if (this.#stopped || this.running.get(c.plan.name) !== c || Date.now() >= deadline) return false;
      await sleep(50);
    }
    return true;
  }

  async #remove(name: string, why: string, reason = 'removed'): Promise<void> {
    this.#removals.set(name, (this.#removals.get(name) ?? 0) + 1);
    const current = this.running.get(name);
    if (!current) return;
    this.running.delete(name);
    this.#fingerprints.delete(name);
    this.deps.logger.info({ connection: name, why }, 'connection stopping');
    await stop(current, reason);
  }
}

async function stop(c: RunningConnection, reason: string): Promise<void> {
  c.stopExtras();
  await c.connection.stop(reason);
}
