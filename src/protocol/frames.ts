import { ejsonParse, ejsonStringify, isPlainJson } from './ejson.js';
import { ProtocolError } from './errors.js';

/**
 * One application message on the tunnel (the payload of an engine.io `4` packet),
 * decoded: Primus control strings or primus-emitter packets.
 */
export type TunnelMessage =
  | { kind: 'ping'; timestamp: string }
  | { kind: 'pong'; timestamp: string }
  | { kind: 'server-close' }
  | { kind: 'primus'; text: string }
  | { kind: 'event'; name: string; args: unknown[]; id?: number }
  | { kind: 'ack'; id: number; args: unknown[] };

export const EMITTER_EVENT = 0;
export const EMITTER_ACK = 1;

const PING = 'primus::ping::';
const PONG = 'primus::pong::';
const SERVER_CLOSE = 'primus::server::close';

/** The default Primus/engine.io message cap of the real server (SOCKET_MAX_RESPONSE_LENGTH). */
export const DEFAULT_MAX_FRAME_BYTES = 22_020_096;

export function decodeTunnelMessage(text: string, maxBytes = DEFAULT_MAX_FRAME_BYTES): TunnelMessage {
  // String length is a lower bound for the byte length: cheap first guard before parsing.
  if (text.length > maxBytes || Buffer.byteLength(text) > maxBytes) {
    throw new ProtocolError('FRAME_TOO_LARGE', `frame of ${Buffer.byteLength(text)} bytes exceeds ${maxBytes}`);
  }
  const value = ejsonParse(text);
  if (typeof value === 'string') {
    if (value.startsWith(PING)) return { kind: 'ping', timestamp: value.slice(PING.length) };
    if (value.startsWith(PONG)) return { kind: 'pong', timestamp: value.slice(PONG.length) };
    if (value === SERVER_CLOSE) return { kind: 'server-close' };
    return { kind: 'primus', text: value };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ProtocolError('BAD_EMITTER_PACKET', 'frame is neither a Primus string nor an emitter packet');
  }
  const packet = value as { type?: unknown; data?: unknown; id?: unknown };
  if (!Array.isArray(packet.data)) {
    throw new ProtocolError('BAD_EMITTER_PACKET', 'emitter packet has no data array');
  }
  const id = packet.id;
  if (id !== undefined && (typeof id !== 'number' || !Number.isSafeInteger(id))) {
    throw new ProtocolError('BAD_EMITTER_PACKET', 'emitter packet id is not an integer');
  }
  if (packet.type === EMITTER_EVENT) {
    const [name, ...args] = packet.data as unknown[];
    if (typeof name !== 'string' || name.length === 0) {
      throw new ProtocolError('BAD_EMITTER_PACKET', 'emitter event has no name');
    }
    return id === undefined ? { kind: 'event', name, args } : { kind: 'event', name, args, id };
  }
  if (packet.type === EMITTER_ACK) {
    if (id === undefined) throw new ProtocolError('BAD_EMITTER_PACKET', 'emitter ack has no id');
    return { kind: 'ack', id, args: packet.data };
  }
  throw new ProtocolError('BAD_EMITTER_PACKET', `unknown emitter packet type ${JSON.stringify(packet.type)}`);
}

export function encodeEvent(name: string, args: unknown[], id?: number): string {
  return ejsonStringify(id === undefined ? { type: EMITTER_EVENT, data: [name, ...args] } : { type: EMITTER_EVENT, data: [name, ...args], id });
}

/**
 * The text of encodeEvent(name, [{ ...payload, streamingID }]), without building the copy or
 * the packet: a request frame is sent for every relayed request. Same bytes (the streamingID
 * key comes last, as in the copy).
 */
export function encodeEventWithStreamingId(name: string, payload: object, streamingID: string): string {
  if (Array.isArray(payload) || 'streamingID' in payload || !isPlainJson(payload)) return encodeEvent(name, [{ ...payload, streamingID }]);
  const fields = JSON.stringify(payload);
  const open = fields.length > 2 ? `${fields.slice(0, -1)},` : '{';
  return `{"type":${EMITTER_EVENT},"data":[${JSON.stringify(name)},${open}"streamingID":${JSON.stringify(streamingID)}}]}`;
}

export function encodeAck(id: number, args: unknown[]): string {
  return ejsonStringify({ id, type: EMITTER_ACK, data: args });
}

export function encodePing(timestamp: number | string): string {
  return JSON.stringify(PING + String(timestamp));
}

export function encodePong(timestamp: string): string {
  return JSON.stringify(PONG + timestamp);
}

export function encodeServerClose(): string {
  return JSON.stringify(SERVER_CLOSE);
}
