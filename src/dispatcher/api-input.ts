import type { IncomingMessage } from 'node:http';
import { BodyTooLargeError, readBody } from '../http/server-helpers.js';
import { FAILURES, type Failure } from '../protocol/failures.js';
import { parseJson } from '../json.js';
import { ApiError } from './api-answers.js';

const BODY_LIMIT = 64 * 1024;
export const HASHED_TOKEN = /^[0-9a-f]{64}$/i;
export const CLIENT_ID = /^[A-Za-z0-9._~:-]{1,128}$/;
export const SERVER_ID = /^[A-Za-z0-9._~:-]{1,253}$/;

/** A path segment, percent-decoded and checked against `pattern`; otherwise the `invalid` failure. */
export function segment(raw: string, invalid: Failure, what: string, pattern: RegExp): string {
  let v: string;
  try {
    v = decodeURIComponent(raw);
  } catch {
    throw new ApiError(invalid, `Invalid ${what}`, `${what} is not valid percent-encoding`);
  }
  if (!pattern.test(v)) {
    throw new ApiError(invalid, `Invalid ${what}`, `${what} must match ${pattern.source}`);
  }
  return v;
}

export function hashedTokenSegment(raw: string): string {
  return segment(raw, FAILURES.INVALID_HASHED_TOKEN, 'hashed token', HASHED_TOKEN).toLowerCase();
}

export async function readJson(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  let buf: Buffer;
  try {
    buf = await readBody(req, BODY_LIMIT);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw new ApiError(FAILURES.BODY_TOO_LARGE, 'Body too large', `request body exceeds ${BODY_LIMIT} bytes`);
    throw err;
  }
  const text = buf.toString('utf8').trim();
  if (text === '') return undefined;
  try {
    const v = parseJson(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    throw new ApiError(FAILURES.INVALID_BODY, 'Invalid body', 'request body is not JSON');
  }
}

export function attributesOf(body: Record<string, unknown> | undefined): Record<string, unknown> {
  const data = body?.data as Record<string, unknown> | undefined;
  const attrs = data && typeof data === 'object' ? (data.attributes as Record<string, unknown> | undefined) : undefined;
  return attrs && typeof attrs === 'object' ? attrs : {};
}

export function optionalHttpUrl(value: unknown, name: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new ApiError(FAILURES.INVALID_ATTRIBUTE, `Invalid ${name}`, `${name} must be a string`);
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ApiError(FAILURES.INVALID_ATTRIBUTE, `Invalid ${name}`, `${name} must be an http(s) URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ApiError(FAILURES.INVALID_ATTRIBUTE, `Invalid ${name}`, `${name} must be an http(s) URL`);
  if (u.username || u.password) throw new ApiError(FAILURES.INVALID_ATTRIBUTE, `Invalid ${name}`, `${name} must not carry credentials`);
  return value.replace(/\/+$/, '');
}
