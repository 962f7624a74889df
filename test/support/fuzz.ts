/**
 * Seeded, reproducible fuzzing helpers: a small PRNG, generators and mutators.
 *
 * FUZZ_SEED (default 0x5eedf00d) seeds every target; FUZZ_CASES (default 100 000) sets the count
 * per target; FUZZ_ONLY=<index> replays one case. Each case draws from its own PRNG derived from
 * (seed, index), so a failure message's seed and index replay exactly that input.
 */

export const DEFAULT_FUZZ_SEED = 0x5eedf00d;
export const DEFAULT_FUZZ_CASES = 100_000;

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}=${raw} is not a non-negative integer`);
  return n;
}

export const FUZZ_SEED = envInt('FUZZ_SEED', DEFAULT_FUZZ_SEED) >>> 0;
export const FUZZ_CASES = envInt('FUZZ_CASES', DEFAULT_FUZZ_CASES);
const FUZZ_ONLY = process.env.FUZZ_ONLY === undefined || process.env.FUZZ_ONLY === '' ? undefined : envInt('FUZZ_ONLY', 0);

/** mulberry32: 32-bit state, good enough spread for fuzzing, trivially reproducible. */
export class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** Uniform uint32. */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  float(): number {
    return this.next() / 0x1_0000_0000;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor(this.float() * n);
  }
  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.float() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  /** Small sizes are common, big ones rare: lengths that exercise both edges. */
  size(max: number): number {
    const r = this.float();
    return Math.min(max, Math.floor(r * r * r * (max + 1)));
  }
}

/** Per-case seed: the case index mixed into the target seed (splitmix-style finaliser). */
export function caseSeed(seed: number, index: number): number {
  let z = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** A short, printable rendering of a fuzz input for failure messages. */
export function show(input: unknown, max = 600): string {
  let s: string;
  if (Buffer.isBuffer(input)) s = `<Buffer ${input.length}B ${input.subarray(0, max / 2).toString('hex')}>`;
  else if (typeof input === 'string') s = JSON.stringify(input);
  else {
    try {
      s = JSON.stringify(input, (_k, v: unknown) => (Buffer.isBuffer(v) ? `<Buffer ${v.length}B>` : v)) ?? String(input);
    } catch {
      s = String(input);
    }
  }
  return s.length > max ? `${s.slice(0, max)}… (${s.length} chars)` : s;
}

export interface FuzzCase {
  readonly rng: Rng;
  readonly index: number;
  /** Records the input under test so a failure message can show it. */
  input(value: unknown): void;
}

export interface FuzzFailure extends Error {
  seed: number;
  index: number;
}

function failure(target: string, seed: number, index: number, input: unknown, err: unknown): FuzzFailure {
  const e = new Error(
    `[fuzz ${target}] seed=${seed} case=${index} (replay: FUZZ_SEED=${seed} FUZZ_ONLY=${index})\n  input: ${show(input)}\n  ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`,
    { cause: err },
  ) as FuzzFailure;
  e.seed = seed;
  e.index = index;
  return e;
}

/** The indices to run: all FUZZ_CASES, or just FUZZ_ONLY. */
export function caseIndices(count = FUZZ_CASES): number[] {
  if (FUZZ_ONLY !== undefined) return [FUZZ_ONLY];
  return Array.from({ length: count }, (_, i) => i);
}

export interface FuzzStats {
  cases: number;
  seed: number;
  ms: number;
  /** Slowest single case, for the report (never asserted: no timing thresholds). */
  slowestMs: number;
  slowestIndex: number;
}

/**
 * Runs `body` for every case synchronously; the first throw becomes a failure naming target,
 * seed, case index and input. Yields to the event loop between batches so the runner stays live.
 */
export async function fuzz(target: string, body: (c: FuzzCase) => void, opts: { seed?: number; count?: number } = {}): Promise<FuzzStats> {
  const seed = opts.seed ?? FUZZ_SEED;
  const indices = caseIndices(opts.count);
  const started = performance.now();
  let slowestMs = 0;
  let slowestIndex = -1;
  for (let n = 0; n < indices.length; n++) {
    const index = indices[n]!;
    let input: unknown;
    const c: FuzzCase = { rng: new Rng(caseSeed(seed, index)), index, input: (v) => void (input = v) };
    const t0 = performance.now();
    try {
      body(c);
    } catch (err) {
      throw failure(target, seed, index, input, err);
    }
    const dt = performance.now() - t0;
    if (dt > slowestMs) {
      slowestMs = dt;
      slowestIndex = index;
    }
    if (n % 2000 === 1999) await new Promise((r) => setImmediate(r));
  }
  return { cases: indices.length, seed, ms: performance.now() - started, slowestMs, slowestIndex };
}

export { failure as fuzzFailure };

/**
 * A fixed corpus of valid samples for splicing, drawn from its own seed, so that a case replayed
 * alone (FUZZ_ONLY) sees exactly the corpus it saw in the full run.
 */
export function makeCorpus<T>(size: number, generate: (rng: Rng) => T, seed = FUZZ_SEED): T[] {
  return Array.from({ length: size }, (_, i) => generate(new Rng(caseSeed(seed ^ 0xc0ffee, i))));
}

// ---------------------------------------------------------------- generators

export const BOUNDARY_NUMBERS = [
  '0', '-0', '1', '-1', '0.5', '1e-7', '127', '128', '255', '256', '65535', '65536',
  '2147483647', '2147483648', '-2147483648', '4294967295', '4294967296',
  '9007199254740991', '9007199254740992', '-9007199254740993', '1e21', '1e308',
  '1.7976931348623157e308', '1e309', '-1e309', '5e-324', '1e-400', '0x10', '1_000', 'NaN', 'Infinity',
  '00', '01', '1.', '.1', '+1', '1e', '99999999999999999999999999999999999',
] as const;

export const UNICODE_SAMPLES = [
  'é', 'ß', '中文', '🙂', '\u0000', '\u0001', '\u001f', '\u007f', '\u0085', '\u00a0', '\u2028', '\u2029',
  '\ufeff', '\ufffd', '\uffff', '\ud800', '\udfff', '\ud83d', '\u200b', '\u202e',
  '\uff0e', '\uff0e\uff0e', '\u2024', '\u2025', '\ufe30', '\uff0f', '\uff3c', '\u2215', '\u0130', '\u212a',
];

/** Encodings that look harmless but decode to something structural. */
export const PERCENT_TRICKS = [
  '%2e', '%2E', '%2e%2e', '%2E%2e', '.%2e', '%2e.', '%252e%252e', '%25252e%25252e', '%2f', '%2F', '%5c', '%5C',
  '%00', '%0a', '%0d', '%09', '%20', '%23', '%3f', '%3F', '%25', '%', '%%', '%zz', '%2', '%c0%ae', '%c0%af',
  '%e0%80%ae', '%ef%bc%8e', '%u002e', '%252f', '%C0%AE%C0%AE', '..%2f', '%2e%2e%5c', '..;', ';', '%3b',
];

export function randomBytes(rng: Rng, max: number): Buffer {
  const n = rng.size(max);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i += 4) {
    const v = rng.next();
    b[i] = v & 0xff;
    if (i + 1 < n) b[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < n) b[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < n) b[i + 3] = (v >>> 24) & 0xff;
  }
  return b;
}

const JSONISH = ['{', '}', '[', ']', ':', ',', '"', '\\', ' ', '\n', 'true', 'false', 'null', '"$binary"', '"$date"', '"$escape"', '"__proto__"', '"type"', '"data"', '"id"', '"status"', '"headers"', '0', '1', '-', 'e', '.'];
const ASCII = ' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~';

/** A string from a mix of alphabets: printable ASCII, JSON tokens, unicode edge cases, %-tricks. */
export function randomString(rng: Rng, max: number): string {
  const n = rng.size(max);
  const parts: string[] = [];
  let len = 0;
  const mode = rng.int(4);
  while (len < n) {
    let p: string;
    const k = mode === 3 ? rng.int(4) : mode;
    if (k === 0) p = ASCII[rng.int(ASCII.length)]!;
    else if (k === 1) p = rng.pick(JSONISH);
    else if (k === 2) p = rng.chance(0.5) ? rng.pick(UNICODE_SAMPLES) : String.fromCharCode(rng.int(0x10000));
    else p = rng.pick(PERCENT_TRICKS);
    parts.push(p);
    len += p.length;
  }
  return parts.join('');
}

/** A random JSON-compatible value (Buffers included when `binary`). */
export function randomJson(rng: Rng, depth = 4, binary = false): unknown {
  const k = rng.int(depth <= 0 ? 6 : 9);
  switch (k) {
    case 0: return null;
    case 1: return rng.chance(0.5);
    case 2: return Number(rng.pick(BOUNDARY_NUMBERS.filter((x) => Number.isFinite(Number(x))))) * (rng.chance(0.1) ? rng.float() : 1);
    case 3: return rng.int(1000);
    case 4: return randomString(rng, 24);
    case 5: return binary ? randomBytes(rng, 64) : randomString(rng, 8);
    case 6:
    case 7: {
      const o: Record<string, unknown> = {};
      const n = rng.int(5);
      for (let i = 0; i < n; i++) o[rng.chance(0.3) ? rng.pick(['$binary', '$date', '$escape', '$type', '$value', 'type', 'data', 'id', 'status']) : randomString(rng, 10)] = randomJson(rng, depth - 1, binary);
      return o;
    }
    default: {
      const n = rng.int(5);
      return Array.from({ length: n }, () => randomJson(rng, depth - 1, binary));
    }
  }
}

/** `depth` levels of nesting around `core`: arrays, objects or $escape wrappers. */
export function deepNest(depth: number, kind: 'array' | 'object' | 'escape', core = '1'): string {
  const [open, close] = kind === 'array' ? ['[', ']'] : kind === 'object' ? ['{"a":', '}'] : ['{"$escape":{"a":', '}}'];
  return open.repeat(depth) + core + close.repeat(depth);
}

// ---------------------------------------------------------------- mutators

/** One random structural mutation of a string (JS code units; lone surrogates on purpose). */
export function mutateString(rng: Rng, s: string, corpus: readonly string[] = []): string {
  const at = () => rng.int(s.length + 1);
  switch (rng.int(12)) {
    case 0: { // flip a bit of one code unit
      if (s.length === 0) return s;
      const i = rng.int(s.length);
      return s.slice(0, i) + String.fromCharCode(s.charCodeAt(i) ^ (1 << rng.int(16))) + s.slice(i + 1);
    }
    case 1: { // insert a random char
      const i = at();
      return s.slice(0, i) + (rng.chance(0.5) ? ASCII[rng.int(ASCII.length)] : rng.pick(JSONISH)) + s.slice(i);
    }
    case 2: { // delete a range
      const i = at();
      return s.slice(0, i) + s.slice(i + 1 + rng.size(16));
    }
    case 3: { // duplicate a range
      const i = at();
      const j = Math.min(s.length, i + 1 + rng.size(32));
      return s.slice(0, j) + s.slice(i, j).repeat(1 + rng.size(8)) + s.slice(j);
    }
    case 4: { // splice with another valid sample
      if (corpus.length === 0) return s.slice(0, at());
      const other = rng.pick(corpus);
      return s.slice(0, at()) + other.slice(rng.int(other.length + 1));
    }
    case 5: { // replace a number with a boundary value
      const nums = [...s.matchAll(/-?\d+(\.\d+)?([eE][+-]?\d+)?/g)];
      if (nums.length === 0) return s + rng.pick(BOUNDARY_NUMBERS);
      const m = rng.pick(nums);
      return s.slice(0, m.index) + rng.pick(BOUNDARY_NUMBERS) + s.slice(m.index + m[0].length);
    }
    case 6: { // unicode edge case
      const i = at();
      return s.slice(0, i) + rng.pick(UNICODE_SAMPLES) + s.slice(i);
    }
    case 7: { // %-encoding trick
      const i = at();
      return s.slice(0, i) + rng.pick(PERCENT_TRICKS) + s.slice(i);
    }
    case 8: // truncate
      return s.slice(0, at());
    case 9: { // wrap in nesting
      const d = 1 + rng.size(rng.chance(0.002) ? 100_000 : 80);
      return rng.chance(0.5) ? '['.repeat(d) + s + ']'.repeat(d) : '{"$escape":{"x":'.repeat(d) + s + '}}'.repeat(d);
    }
    case 10: { // swap two ranges
      const i = at();
      const j = at();
      const [a, b] = i < j ? [i, j] : [j, i];
      return s.slice(b) + s.slice(a, b) + s.slice(0, a);
    }
    default: { // huge run of one char
      const i = at();
      return s.slice(0, i) + rng.pick(['a', '0', '[', '"', '\\', '%', ' ', '/']).repeat(rng.size(rng.chance(0.005) ? 200_000 : 2000)) + s.slice(i);
    }
  }
}

/** 1..max mutations in a row. */
export function mutateStringN(rng: Rng, s: string, corpus: readonly string[] = [], max = 4): string {
  let out = s;
  const n = 1 + rng.int(max);
  for (let i = 0; i < n; i++) out = mutateString(rng, out, corpus);
  return out;
}

/** One random byte-level mutation. */
export function mutateBytes(rng: Rng, b: Buffer, corpus: readonly Buffer[] = []): Buffer {
  const at = () => rng.int(b.length + 1);
  switch (rng.int(9)) {
    case 0: { // bit flip
      if (b.length === 0) return b;
      const c = Buffer.from(b);
      c[rng.int(c.length)]! ^= 1 << rng.int(8);
      return c;
    }
    case 1: { // insert random bytes
      const i = at();
      return Buffer.concat([b.subarray(0, i), randomBytes(rng, 16), b.subarray(i)]);
    }
    case 2: { // delete
      const i = at();
      return Buffer.concat([b.subarray(0, i), b.subarray(i + 1 + rng.size(16))]);
    }
    case 3: { // duplicate
      const i = at();
      const j = Math.min(b.length, i + 1 + rng.size(32));
      return Buffer.concat([b.subarray(0, j), b.subarray(i, j), b.subarray(j)]);
    }
    case 4: { // splice
      if (corpus.length === 0) return b.subarray(0, at());
      const o = rng.pick(corpus);
      return Buffer.concat([b.subarray(0, at()), o.subarray(rng.int(o.length + 1))]);
    }
    case 5: { // boundary uint32 somewhere (length prefixes)
      const c = Buffer.from(b.length >= 4 ? b : Buffer.concat([b, Buffer.alloc(4 - b.length)]));
      const v = rng.pick([0, 1, 2, 3, 4, 0x7f, 0xff, 0x100, 0xffff, 0x10000, 1024 * 1024, 1024 * 1024 + 1, 0x7fffffff, 0x80000000, 0xffffffff]);
      c.writeUInt32LE(v >>> 0, rng.int(c.length - 3));
      return c;
    }
    case 6: // truncate
      return b.subarray(0, at());
    case 7: { // unicode/percent text inserted
      const i = at();
      return Buffer.concat([b.subarray(0, i), Buffer.from(rng.pick([...UNICODE_SAMPLES, ...PERCENT_TRICKS]), 'utf8'), b.subarray(i)]);
    }
    default: { // set a byte to a boundary value
      if (b.length === 0) return b;
      const c = Buffer.from(b);
      c[rng.int(c.length)] = rng.pick([0x00, 0x7f, 0x80, 0xc0, 0xfe, 0xff, 0x22, 0x5c, 0x7b, 0x7d]);
      return c;
    }
  }
}

/**
 * Splits bytes into random chunk sizes: single bytes, a few bytes or larger pieces, finest where
 * parsers live (the first `fine` bytes), so long bodies do not become thousands of chunks.
 */
export function randomChunks(rng: Rng, b: Buffer, fine = 512): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  const style = rng.int(4);
  while (i < b.length) {
    const n = i >= fine ? 1 + rng.size(65536) : style === 0 ? 1 : style === 1 ? 1 + rng.int(8) : style === 2 ? 1 + rng.size(4096) : b.length;
    out.push(b.subarray(i, i + n));
    i += n;
  }
  return out;
}
