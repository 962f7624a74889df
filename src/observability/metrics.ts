import { Counter, Gauge, Registry, collectDefaultMetrics, type CounterConfiguration, type GaugeConfiguration, type LabelValues } from 'prom-client';

export { Registry, Counter, Gauge, Histogram } from 'prom-client';

/** One registry per program instance (never the global one), so in-process tests do not collide. */
export function createRegistry(prefix: string, defaults = true): Registry {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry, prefix: `${prefix}_` });
  return registry;
}

/**
 * A counter of one label for a hot path (once or more per relayed request). prom-client hashes
 * the label object on every inc, most of the cost of a call; here increments add up per label
 * value in a Map and reach the counter when it is read (a scrape, or get()), once per value.
 */
export class TalliedCounter<N extends string> {
  readonly counter: Counter<N>;
  readonly #label: N;
  readonly #pending = new Map<string, number>();

  constructor(config: Omit<CounterConfiguration<N>, 'collect' | 'labelNames'> & { labelNames: readonly [N] }) {
    const label = config.labelNames[0];
    const pending = this.#pending;
    this.#label = label;
    this.counter = new Counter<N>({
      ...config,
      collect() {
        for (const [value, n] of pending) this.inc({ [label]: value } as LabelValues<N>, n);
        pending.clear();
      },
    });
  }

  inc(labels: Partial<Record<N, string>>, n = 1): void {
    const value = labels[this.#label] ?? '';
    this.#pending.set(value, (this.#pending.get(value) ?? 0) + n);
  }
}

/** A gauge without labels kept as a plain number, set on the gauge when it is read. */
export class TalliedGauge {
  readonly gauge: Gauge;
  #value = 0;

  constructor(config: Omit<GaugeConfiguration<string>, 'collect' | 'labelNames'>) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the gauge's collect reads this tally
    const tally = this;
    this.gauge = new Gauge({
      ...config,
      collect() {
        this.set(tally.#value);
      },
    });
  }

  inc(n = 1): void {
    this.#value += n;
  }

  dec(n = 1): void {
    this.#value -= n;
  }
}
