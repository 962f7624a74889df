import { ProtocolError } from './errors.js';
import { parseJson } from '../json.js';

/**
 * EJSON as Primus' "ejson" parser speaks it: JSON where binary values travel as
 * {"$binary":"<base64>"}, dates as {"$date":ms} and objects that would look like one of
 * those are wrapped as {"$escape":{...}}. Decoding yields Buffers for $binary.
 */

const RESERVED = new Set(['$binary', '$date', '$escape', '$type', '$value']);

function isSpecialShape(o: Record<string, unknown>): boolean {
  const keys = Object.keys(o);
  return keys.length === 1 && RESERVED.has(keys[0]) || (keys.length === 2 && '$type' in o && '$value' in o);
}

/**
 * JSON.stringify checks every character of a string for escapes, about 3 ns each in Node 24:
 * 0.3 ms for a 64 KiB body, most of what the server spends on an upload. Base64 never needs an
 * escape, so a large binary is stringified as this mark and its base64 spliced in afterwards.
 */
const SPLICE_MIN_BYTES = 1024;
const MARK = '\u0000ejson-binary\u0000';
const MARK_JSON = JSON.stringify(MARK);

/** `spliced`, when given, collects the base64 of large binaries (in output order) and marks their place. */
function toWire(value: unknown, spliced?: string[]): unknown {
  if (value === null || typeof value !== 'object') {
    return value;
  }
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    const base64 = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
    if (spliced === undefined || value.byteLength < SPLICE_MIN_BYTES) return { $binary: base64 };
    spliced.push(base64);
    return { $binary: MARK };
  }
  if (value instanceof Date) {
    return { $date: value.getTime() };
  }
  if (Array.isArray(value)) {
    return value.map((v) => toWire(v, spliced));
  }
  const out: Record<string, unknown> = {};
  // Same key order as JSON.stringify will write them, so `spliced` is in output order.
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v !== undefined) out[k] = toWire(v, spliced);
  }
  return isSpecialShape(out) ? { $escape: out } : out;
}

function fromWire(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== 'object') {
    return value;
  }
  if (depth > 64) {
    throw new ProtocolError('BAD_EJSON', 'EJSON value nested deeper than 64 levels');
  }
  if (Array.isArray(value)) {
    return value.map((v) => fromWire(v, depth + 1));
  }
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1) {
    const key = keys[0];
    if (key === '$binary') {
      if (typeof o.$binary !== 'string') throw new ProtocolError('BAD_EJSON', '$binary must be a base64 string');
      return Buffer.from(o.$binary, 'base64');
    }
    if (key === '$date') {
      // An out-of-range time would decode to an Invalid Date that encodes back as null.
      const date = typeof o.$date === 'number' ? new Date(o.$date) : undefined;
      if (date === undefined || Number.isNaN(date.getTime())) throw new ProtocolError('BAD_EJSON', '$date must be a time in milliseconds');
      return date;
    }
    if (key === '$escape') {
      const inner = o.$escape;
      if (inner === null || typeof inner !== 'object' || Array.isArray(inner)) {
        throw new ProtocolError('BAD_EJSON', '$escape must wrap an object');
      }
      return decodeObject(inner as Record<string, unknown>, depth);
    }
  }
  return decodeObject(o, depth);
}

function decodeObject(o: Record<string, unknown>, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    // A hostile "__proto__" key would otherwise set the decoded object's prototype.
    if (k === '__proto__') continue;
    out[k] = fromWire(v, depth + 1);
  }
  return out;
}

/**
 * Whether JSON.stringify of the value itself writes what its wire form would: no bytes, no
 * dates, no object that is not a plain one (a class instance, a boxed value) and no key
 * starting with `$` (which might need an $escape). Tunnel frames almost always are such values,
 * and checking is much cheaper than building the copy (about 2 µs for a request frame).
 */
export function isPlainJson(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!isPlainJson(value[i])) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return false;
  for (const k in value) {
    if (!Object.hasOwn(value, k)) continue;
    if (k.charCodeAt(0) === 36) return false;
    if (!isPlainJson((value as Record<string, unknown>)[k])) return false;
  }
  return true;
}

export function ejsonStringify(value: unknown): string {
  if (isPlainJson(value)) return JSON.stringify(value);
  const spliced: string[] = [];
  const text = JSON.stringify(toWire(value, spliced));
  if (spliced.length === 0) return text;
  const parts = text.split(MARK_JSON);
  // A string of the value's own equal to the mark: the plain way, then.
  if (parts.length !== spliced.length + 1) return JSON.stringify(toWire(value));
  let out = parts[0];
  for (let i = 0; i < spliced.length; i++) out += `"${spliced[i]}"${parts[i + 1]}`;
  return out;
}

export function ejsonParse(text: string): unknown {
  let parsed: unknown;
  try {
    parsed = parseJson(text);
  } catch (err) {
    throw new ProtocolError('BAD_JSON', 'frame is not valid JSON', { cause: err });
  }
  // Frames almost never hold a `$` key: then what JSON.parse built is the decoded value, and the
  // copy fromWire makes of every object (a third of the client's decoding cost) is not needed.
  return isDecodedAlready(parsed, 0) ? parsed : fromWire(parsed, 0);
}

/**
 * Whether a JSON.parse result decodes to itself: no key starting with `$` (an EJSON wrapper or
 * an $escape), no own `__proto__` key (which decoding drops) and no nesting past fromWire's
 * limit (which it refuses).
 */
function isDecodedAlready(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== 'object') return true;
  if (depth > 64) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!isDecodedAlready(value[i], depth + 1)) return false;
    return true;
  }
  for (const k in value) {
    if (k.charCodeAt(0) === 36 || k === '__proto__') return false;
    if (!isDecodedAlready((value as Record<string, unknown>)[k], depth + 1)) return false;
  }
  return true;
}
