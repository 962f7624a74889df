import type { ServerResponse } from 'node:http';
import { FAILURE_HEADER } from '../http/server-helpers.js';
import { FAILURES, type Failure } from '../protocol/failures.js';

const JSONAPI = 'application/vnd.api+json';

/** A request we refuse: the failure (status, stable code, x-broker-failure reason) and what to tell the caller. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(
    readonly failure: Failure,
    readonly title: string,
    readonly detail: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.status = failure.status;
    this.code = failure.code;
  }
}

export function methodNotAllowed(allowed: string[]): ApiError {
  return new ApiError(FAILURES.METHOD_NOT_ALLOWED, 'Method not allowed', `use ${allowed.join(' or ')}`, { allow: allowed.join(', ') });
}

export function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, type = JSONAPI): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (status === 204) {
    res.writeHead(204, headers);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': `${type}; charset=utf-8`, 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

export function sendError(res: ServerResponse, e: ApiError): void {
  send(
    res,
    e.status,
    { jsonapi: { version: '1.0' }, errors: [{ status: String(e.status), code: e.code, title: e.title, detail: e.detail }] },
    { ...e.headers, [FAILURE_HEADER]: e.failure.reason },
  );
}
