import { ProtocolError } from './errors.js';
import { parseJson } from '../json.js';

/** engine.io v4 packet types, as single-character prefixes on the wire. */
export const EnginePacketType = {
  open: '0',
  close: '1',
  ping: '2',
  pong: '3',
  message: '4',
  upgrade: '5',
  noop: '6',
} as const;

export type EnginePacketName = keyof typeof EnginePacketType;

export interface EnginePacket {
  type: EnginePacketName;
  data: string;
}

const byPrefix = new Map<string, EnginePacketName>(
  Object.entries(EnginePacketType).map(([name, prefix]) => [prefix, name as EnginePacketName]),
);

/** Separator between packets in one polling payload (v4). */
export const RECORD_SEPARATOR = '\x1e';

export function encodeEnginePacket(type: EnginePacketName, data = ''): string {
  return EnginePacketType[type] + data;
}

/** Decodes one text engine.io v4 packet (a websocket text frame). */
export function decodeEnginePacket(text: string): EnginePacket {
  const type = byPrefix.get(text.charAt(0));
  if (type === undefined) {
    throw new ProtocolError('BAD_PACKET', `unknown engine.io packet type ${JSON.stringify(text.charAt(0))}`);
  }
  return { type, data: text.slice(1) };
}

/** Decodes a polling payload: several packets separated by \x1e. */
export function decodeEnginePayload(text: string): EnginePacket[] {
  if (text.length === 0) return [];
  return text.split(RECORD_SEPARATOR).map(decodeEnginePacket);
}

export interface EngineOpenData {
  sid: string;
  upgrades: string[];
  pingInterval: number;
  pingTimeout: number;
  maxPayload?: number;
}

export function parseOpenData(data: string): EngineOpenData {
  let parsed: unknown;
  try {
    parsed = parseJson(data);
  } catch (err) {
    throw new ProtocolError('BAD_JSON', 'engine.io open packet is not JSON', { cause: err });
  }
  const o = parsed as Partial<EngineOpenData> | null;
  if (!o || typeof o !== 'object' || typeof o.sid !== 'string' || !isTimerMs(o.pingInterval) || !isTimerMs(o.pingTimeout)) {
    throw new ProtocolError('BAD_PACKET', 'engine.io open packet lacks sid or a usable pingInterval/pingTimeout');
  }
  const upgrades = Array.isArray(o.upgrades) ? o.upgrades.filter((u): u is string => typeof u === 'string') : [];
  const maxPayload = typeof o.maxPayload === 'number' && Number.isSafeInteger(o.maxPayload) && o.maxPayload > 0 ? o.maxPayload : undefined;
  return { sid: o.sid, upgrades, pingInterval: o.pingInterval, pingTimeout: o.pingTimeout, maxPayload };
}

/** Node turns a timer delay that is not a finite number up to 2^31-1 into 1 ms: refuse those. */
function isTimerMs(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0x7fffffff;
}
