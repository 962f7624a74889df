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
  return keys.length === 1 && RESERVED.has(keys[0]!) || (keys.length === 2 && '$type' in o && '$value' in o);
}

function toWire(value: unknown): unknown {
  if (value === null || typeof value !== 'object') {
    return value;
  }
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    return { $binary: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  }
  if (value instanceof Date) {
    return { $date: value.getTime() };
  }
  if (Array.isArray(value)) {
    return value.map(toWire);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v !== undefined) out[k] = toWire(v);
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
    const key = keys[0]!;
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

export function ejsonStringify(value: unknown): string {
  return JSON.stringify(toWire(value));
}

export function ejsonParse(text: string): unknown {
  let parsed: unknown;
  try {
    parsed = parseJson(text);
  } catch (err) {
    throw new ProtocolError('BAD_JSON', 'frame is not valid JSON', { cause: err });
  }
  return fromWire(parsed, 0);
}
