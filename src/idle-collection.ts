import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/**
 * Gives memory back once a busy spell is over. Under load V8 lets the old generation fill with
 * garbage up to its next limit (objects of in-flight requests promoted by scavenges), and an idle
 * process allocates nothing, so on Node 24 no GC runs and that memory stays resident: our server
 * kept ~150 MiB after load with an 18 MiB live heap (bench/README.md, rounds 6 and 7). So the
 * long-running programs watch event-loop utilisation and, in the first idle window after a busy
 * one (or after the heap has grown well past what the last collection left), run one full,
 * memory-reducing collection: ~20-60 ms, taken only while nothing is happening, after which V8
 * returns the freed pages at once.
 */

/** A window at or above this utilisation counts as busy. */
export const BUSY_UTILISATION = 0.05;
/** A window below this utilisation counts as idle. */
export const IDLE_UTILISATION = 0.02;
/** Heap growth over the last collection's result that warrants one even without a busy window. */
export const GROWTH_BYTES = 16 * 1024 * 1024;
/** One window of utilisation; also the most often a collection can run. */
export const WINDOW_MS = 5_000;

/** One window's reading. */
export interface WindowReading {
  /** Event-loop utilisation over the window, 0..1. */
  utilization: number;
  /** V8 heap in use now (bytes). */
  heapBytes: number;
}

/** Decides, one window at a time, when to collect: once per busy spell, in the first idle window after it. */
export class IdleCollectionPolicy {
  #busySinceCollection = false;
  #baselineBytes: number | undefined;

  /** Whether to collect now. */
  observe({ utilization, heapBytes }: WindowReading): boolean {
    this.#baselineBytes ??= heapBytes;
    if (utilization >= BUSY_UTILISATION) {
      this.#busySinceCollection = true;
      return false;
    }
    if (utilization >= IDLE_UTILISATION) return false;
    return this.#busySinceCollection || heapBytes - this.#baselineBytes >= GROWTH_BYTES;
  }

  /** What the collection left: the baseline for growth, and the busy spell is over. */
  collected(heapBytes: number): void {
    this.#busySinceCollection = false;
    this.#baselineBytes = heapBytes;
  }
}

export interface CollectionReport {
  durationMs: number;
  heapBeforeBytes: number;
  heapAfterBytes: number;
}

export interface IdleCollectionDeps {
  /** Runs a full collection (default: V8's, from fullCollection()). */
  collect: () => void;
  /** Utilisation since the previous call (default: performance.eventLoopUtilization). */
  utilization?: () => number;
  heapBytes?: () => number;
  now?: () => number;
  windowMs?: number;
  onCollect?: (report: CollectionReport) => void;
}

export interface IdleCollection {
  /** Reads one window and collects if the policy says so (the timer calls it; tests call it directly). */
  tick(): CollectionReport | undefined;
  stop(): void;
}

/** Starts watching; the timer never keeps the process alive. */
export function startIdleCollection(deps: IdleCollectionDeps): IdleCollection {
  const policy = new IdleCollectionPolicy();
  const utilization = deps.utilization ?? utilizationSinceLastCall();
  const heapBytes = deps.heapBytes ?? (() => process.memoryUsage().heapUsed);
  const now = deps.now ?? (() => performance.now());
  const tick = (): CollectionReport | undefined => {
    const heapBeforeBytes = heapBytes();
    if (!policy.observe({ utilization: utilization(), heapBytes: heapBeforeBytes })) return undefined;
    const started = now();
    deps.collect();
    const heapAfterBytes = heapBytes();
    policy.collected(heapAfterBytes);
    // The collection's own time must not make the next window look busy.
    utilization();
    const report = { durationMs: now() - started, heapBeforeBytes, heapAfterBytes };
    deps.onCollect?.(report);
    return report;
  };
  const timer = setInterval(tick, deps.windowMs ?? WINDOW_MS);
  timer.unref();
  return { tick, stop: () => clearInterval(timer) };
}

function utilizationSinceLastCall(): () => number {
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  return () => {
    const current = performance.eventLoopUtilization();
    const window = performance.eventLoopUtilization(current, last);
    last = current;
    return window.utilization;
  };
}

type GcFunction = (options?: { type?: string; execution?: string; flavor?: string }) => void;

/**
 * V8's full collection, from the `gc` that --expose-gc puts on the global object (the programs
 * re-execute with it, src/heap-flags.ts; the image sets it in NODE_OPTIONS), or undefined
 * without it. Which call collects depends on the V8 (measured, 400 k dropped objects): on Node 24,
 * `gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })` (V8's memory-reducing
 * collection) frees them and a bare `gc()` does not; on Node 20 it is the other way round (the
 * options call there frees a part, so its result cannot tell). So both run, the options call
 * first; the second finds little left to do (a few ms on our live heap).
 */
export function fullCollection(gc: unknown = (globalThis as { gc?: unknown }).gc): (() => void) | undefined {
  if (typeof gc !== 'function') return undefined;
  const run = gc as GcFunction;
  return () => {
    run({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    run();
  };
}
