import { Counter, Gauge, Registry, collectDefaultMetrics, type CounterConfiguration, type GaugeConfiguration, type LabelValues, type Metric } from 'prom-client';

export { Registry, Counter, Gauge, Histogram } from 'prom-client';

/** One registry per program instance (never the global one), so in-process tests do not collide. */
export function createRegistry(prefix: string, defaults = true): Registry {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry, prefix: `${prefix}_` });
  return registry;
}

type LabelArg<N extends string> = Partial<Record<N, string | number>>;

/** One label set seen by a tally: its labels (a copy) and what is pending for it. */
interface Entry<N extends string> {
  labels: LabelValues<N>;
  value: number;
}

/**
 * Label sets of a hot-path metric, found by a key built from their values in label order: a
 * Map lookup, where prom-client validates and hashes the label object on every call. A label
 * the metric does not have throws at once, when its set is first seen, as prom-client would.
 */
class LabelSets<N extends string> {
  readonly #names: readonly N[];
  readonly #metricName: string;
  readonly entries = new Map<string, Entry<N>>();

  constructor(metricName: string, names: readonly N[] = []) {
    this.#metricName = metricName;
    this.#names = names;
  }

  #key(labels: LabelArg<N> | undefined): string {
    if (labels === undefined) return '';
    const names = this.#names;
    if (names.length === 1) return String(labels[names[0]] ?? '');
    let key = '';
    for (const name of names) key += `${labels[name] ?? ''}\u0000`;
    return key;
  }

  entry(labels: LabelArg<N> | undefined): Entry<N> {
    const key = this.#key(labels);
    let entry = this.entries.get(key);
    if (entry === undefined) {
      const copy = {} as LabelValues<N>;
      for (const [name, value] of Object.entries(labels ?? {})) {
        if (!this.#names.includes(name as N)) throw new Error(`Added label "${name}" is not included in initial labelset of ${this.#metricName}`);
        if (value !== undefined) (copy as Record<string, string | number>)[name] = value as string | number;
      }
      entry = { labels: copy, value: 0 };
      this.entries.set(key, entry);
    }
    return entry;
  }

  delete(labels: LabelArg<N>): void {
    this.entries.delete(this.#key(labels));
  }
}

/** (labels, n) or (n), as prom-client's overloads take them. */
function splitArgs<N extends string>(a: LabelArg<N> | number | undefined, b: number | undefined): [LabelArg<N> | undefined, number] {
  return typeof a === 'object' ? [a, b ?? 1] : [undefined, a ?? 1];
}

/**
 * A counter for a hot path (once or more per relayed request): increments add up per label set
 * in plain numbers and reach prom-client's counter when it is read (a scrape, or get()), once
 * per label set. The scrape output is the counter's own.
 */
export class TalliedCounter<N extends string> {
  readonly counter: Counter<N>;
  readonly #sets: LabelSets<N>;

  constructor(config: Omit<CounterConfiguration<N>, 'collect'>) {
    const sets = new LabelSets<N>(config.name, config.labelNames);
    this.#sets = sets;
    this.counter = new Counter<N>({
      ...config,
      collect() {
        for (const entry of sets.entries.values()) {
          if (entry.value === 0) continue;
          this.inc(entry.labels, entry.value);
          entry.value = 0;
        }
      },
    });
  }

  inc(labels?: LabelArg<N> | number, n?: number): void {
    const [set, value] = splitArgs(labels, n);
    if (!(value >= 0)) throw new Error(`It is not possible to decrease a counter (${value})`);
    this.#sets.entry(set).value += value;
  }

  /** Forgets a label set (e.g. a connection that left), pending increments included. */
  remove(labels: LabelArg<N>): void {
    this.#sets.delete(labels);
    this.counter.remove(labels);
  }
}

/** A gauge for a hot path, kept as plain numbers per label set and set on the gauge when it is read. */
export class TalliedGauge<N extends string = string> {
  readonly gauge: Gauge<N>;
  readonly #sets: LabelSets<N>;

  constructor(config: Omit<GaugeConfiguration<N>, 'collect'>) {
    const sets = new LabelSets<N>(config.name, config.labelNames);
    this.#sets = sets;
    this.gauge = new Gauge<N>({
      ...config,
      collect() {
        for (const entry of sets.entries.values()) this.set(entry.labels, entry.value);
      },
    });
  }

  inc(labels?: LabelArg<N> | number, n?: number): void {
    const [set, value] = splitArgs(labels, n);
    this.#sets.entry(set).value += value;
  }

  dec(labels?: LabelArg<N> | number, n?: number): void {
    const [set, value] = splitArgs(labels, n);
    this.#sets.entry(set).value -= value;
  }

  set(labels: LabelArg<N> | number, n?: number): void {
    const [set, value] = typeof labels === 'object' ? [labels, n ?? 0] : [undefined, labels];
    this.#sets.entry(set).value = value;
  }
}

export interface TalliedHistogramConfig<N extends string> {
  name: string;
  help: string;
  labelNames?: readonly N[];
  /** Upper bounds, ascending (prom-client's defaults when left out). */
  buckets?: readonly number[];
  registers?: Registry[];
}

/** One line of a metric as prom-client's registry reads it (prom-client does not export the type). */
interface MetricLine {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

interface HistogramEntry {
  /** Per bucket, not cumulative; the last one is +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * A histogram for a hot path: observations go to plain per-label-set bucket counts. Registered
 * as a metric of its own, it reads like prom-client's Histogram (same lines, same order), where
 * prom-client's would validate, copy and hash the label object of every observation.
 */
export class TalliedHistogram<N extends string = string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: readonly N[];
  readonly #bounds: readonly number[];
  readonly #sets: LabelSets<N>;
  readonly #data = new Map<Entry<N>, HistogramEntry>();

  constructor(config: TalliedHistogramConfig<N>) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames ?? [];
    if (this.labelNames.includes('le' as N)) throw new Error('le is a reserved label keyword');
    this.#bounds = [...(config.buckets ?? DEFAULT_BUCKETS)].sort((a, b) => a - b);
    this.#sets = new LabelSets<N>(config.name, this.labelNames);
    if (this.labelNames.length === 0) this.#of(undefined);
    for (const registry of config.registers ?? []) registry.registerMetric(this as unknown as Metric);
  }

  #of(labels: LabelArg<N> | undefined): HistogramEntry {
    const entry = this.#sets.entry(labels);
    let data = this.#data.get(entry);
    if (data === undefined) {
      data = { counts: new Array<number>(this.#bounds.length + 1).fill(0), sum: 0, count: 0 };
      this.#data.set(entry, data);
    }
    return data;
  }

  observe(labels: LabelArg<N> | number, value?: number): void {
    const [set, v] = typeof labels === 'object' ? [labels, value] : [undefined, labels];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`Value is not a valid number: ${String(v)}`);
    const data = this.#of(set);
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && v > bounds[i]) i++;
    data.counts[i]++;
    data.sum += v;
    data.count++;
  }

  reset(): void {
    for (const data of this.#data.values()) {
      data.counts.fill(0);
      data.sum = 0;
      data.count = 0;
    }
  }

  /** What prom-client's registry reads: the bucket lines (cumulative, then +Inf), the sum and the count per label set. */
  get(): Promise<{ name: string; help: string; type: string; values: MetricLine[]; aggregator: string }> {
    const values: MetricLine[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const [entry, data] of this.#data) {
      const labels = entry.labels as Record<string, string | number>;
      let acc = 0;
      this.#bounds.forEach((bound, i) => {
        acc += data.counts[i];
        values.push({ labels: { le: bound, ...labels }, value: acc, metricName: bucketName });
      });
      values.push({ labels: { le: '+Inf', ...labels }, value: data.count, metricName: bucketName });
      values.push({ labels: { ...labels }, value: data.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...labels }, value: data.count, metricName: `${this.name}_count` });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }
}
