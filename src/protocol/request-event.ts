import { ProtocolError } from './errors.js';

/** The payload of a `request` event, both directions (platform → client and webhook → server). */
export interface RelayRequest {
  url: string;
  method: string;
  headers: Record<string, string | string[]>;
  body?: Buffer | string;
  streamingID: string;
  requestId?: string;
}

/** The object an ack carries back for a `request` or `service` event. */
export interface AckResponse {
  status: number;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  errorType?: string;
}

export function parseRelayRequest(value: unknown): RelayRequest {
  const r = value as Partial<RelayRequest> | null;
  if (!r || typeof r !== 'object' || Array.isArray(r)) {
    throw new ProtocolError('BAD_EMITTER_PACKET', 'request payload is not an object');
  }
  if (typeof r.url !== 'string' || typeof r.method !== 'string') {
    throw new ProtocolError('BAD_EMITTER_PACKET', 'request payload lacks url or method');
  }
  const headers: Record<string, string | string[]> = {};
  if (r.headers !== undefined) {
    if (r.headers === null || typeof r.headers !== 'object' || Array.isArray(r.headers)) {
      throw new ProtocolError('BAD_EMITTER_PACKET', 'request headers is not an object');
    }
    for (const [k, v] of Object.entries(r.headers)) {
      // Assigning "__proto__" would replace the headers object's prototype.
      if (k.toLowerCase() === '__proto__') continue;
      if (typeof v === 'string') headers[k.toLowerCase()] = v;
      else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) headers[k.toLowerCase()] = v;
      else if (typeof v === 'number') headers[k.toLowerCase()] = String(v);
    }
  }
  const body = r.body;
  if (body !== undefined && body !== null && typeof body !== 'string' && !Buffer.isBuffer(body)) {
    throw new ProtocolError('BAD_EMITTER_PACKET', 'request body is neither bytes nor a string');
  }
  return {
    url: r.url,
    method: r.method.toUpperCase(),
    headers,
    body: body ?? undefined,
    streamingID: typeof r.streamingID === 'string' ? r.streamingID : '',
    requestId: typeof r.requestId === 'string' ? r.requestId : undefined,
  };
}

export function parseAckResponse(value: unknown): AckResponse {
  const r = value as Partial<AckResponse> | null;
  if (!r || typeof r !== 'object' || typeof r.status !== 'number' || !Number.isInteger(r.status)) {
    throw new ProtocolError('BAD_EMITTER_PACKET', 'ack response has no status');
  }
  return {
    status: r.status,
    headers: r.headers && typeof r.headers === 'object' && !Array.isArray(r.headers) && !Buffer.isBuffer(r.headers) ? ownHeaders(r.headers) : {},
    body: typeof r.body === 'string' || Buffer.isBuffer(r.body) ? r.body : r.body === undefined ? undefined : JSON.stringify(r.body),
    errorType: typeof r.errorType === 'string' ? r.errorType : undefined,
  };
}

/** The ack's headers as a plain object (a "__proto__" key dropped); values are checked where they are written. */
function ownHeaders(headers: Record<string, string | string[]>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (k !== '__proto__') out[k] = v;
  return out;
}
