import { createRequire } from 'node:module';
import type * as Undici from 'undici';

/*
 * The parts of undici the egress stack uses, loaded without undici's index. The index also
 * loads fetch, WebSocket, EventSource, the cache stores and the mocks, which no broker program
 * calls: ~13 MiB of RSS in every process (issue 23, bench/README.md round 10). These are the
 * very modules the index re-exports (test/unit/undici-parts.test.ts checks it), from the
 * version package-lock.json pins; a layout change in an upgrade fails at load, in every test.
 */
const load = createRequire(import.meta.url);

const Dispatcher = load('undici/lib/dispatcher/dispatcher.js') as typeof Undici.Dispatcher;
// What undici's index does: request(), stream()... are methods of every dispatcher.
Object.assign(Dispatcher.prototype, load('undici/lib/api/index.js') as object);

export const Agent = load('undici/lib/dispatcher/agent.js') as typeof Undici.Agent;
export const EnvHttpProxyAgent = load('undici/lib/dispatcher/env-http-proxy-agent.js') as typeof Undici.EnvHttpProxyAgent;
export const errors = load('undici/lib/core/errors.js') as typeof Undici.errors;
export { Dispatcher };

/**
 * undici's top-level request(url, options) with `options.dispatcher`, as its index builds it:
 * the URL split into origin and path (query included), GET unless a body makes it PUT.
 */
export async function requestUrl(dispatcher: Undici.Dispatcher, url: string | URL, options: Partial<Omit<Undici.Dispatcher.RequestOptions, 'origin' | 'path'>>): Promise<Undici.Dispatcher.ResponseData<unknown>> {
  // A bad string throws new URL's TypeError (ERR_INVALID_URL), as in undici; here it rejects.
  const target = typeof url === 'string' ? new URL(url) : url;
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    throw new errors.InvalidArgumentError('Invalid URL protocol: the URL must start with `http:` or `https:`.');
  }
  return dispatcher.request({
    ...options,
    origin: target.origin,
    path: target.search ? `${target.pathname}${target.search}` : target.pathname,
    method: options.method ?? (options.body ? 'PUT' : 'GET'),
  });
}
