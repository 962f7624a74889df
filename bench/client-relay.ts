import { randomUUID } from 'node:crypto';
import type { Dispatcher } from 'undici';
import type { Answer, Egress } from '../src/http/egress.js';
import { compileRules } from '../src/filters/index.js';
import { silentLogger } from '../src/observability/logger.js';
import { TUNNEL_ANSWERS_CAPABILITY } from '../src/protocol/index.js';
import { createClientMetrics } from '../src/client/metrics.js';
import { createRelay } from '../src/client/relay.js';
import { createResponseWriter } from '../src/client/response-writer.js';
import type { Tunnel } from '../src/client/tunnel.js';

/**
 * `node build/bench/client-relay.js [--tunnel]`: CPU µs per relayed request of the client's own
 * relay code (filter, origin headers, answer shaping, the answer's delivery), in one process,
 * with the origin call and the POST /response-data (or the tunnel frame, --tunnel) answered at
 * once by a stub egress: no sockets, no undici, so what is measured is only our code, its
 * promise chains and its garbage. 32 requests in flight, as scenario 1 of the bench. Median of
 * ROUNDS rounds of REQUESTS requests each.
 */
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const REQUESTS = Number(process.env.REQUESTS ?? 100_000);
const CONCURRENCY = 32;
const overTunnel = process.argv.includes('--tunnel');

const originBody = Buffer.from('x'.repeat(1024));
// What the bench origin answers, as parseRawHeaders gives it.
const originHeaders = { 'content-type': 'application/octet-stream', 'content-length': String(originBody.length), date: 'Mon, 07 Dec 2026 15:00:00 GMT', connection: 'keep-alive', 'keep-alive': 'timeout=5' };
const postAnswer = { statusCode: 200, body: Buffer.from('{"ok":true}') };

const egress: Egress = {
  dispatcher: undefined as unknown as Dispatcher,
  request: () => Promise.reject(new Error('not in this bench')),
  requestBuffered: () => Promise.resolve(postAnswer),
  requestAnswer: (): Promise<Answer> => Promise.resolve({ statusCode: 200, headers: { ...originHeaders }, body: originBody }),
  close: async () => {},
};
const logger = silentLogger();
const metrics = createClientMetrics();
const vars = { ORIGIN_URL: 'http://127.0.0.1:40123' };
const rules = compileRules([{ method: 'any', path: '/*', origin: '${ORIGIN_URL}' }], vars);
const relay = createRelay({
  rules: () => rules,
  egress,
  writer: createResponseWriter({ egress, token: '3d6f0c4a-2b1e-4f5a-9c8d-7e6f5a4b3c2d', wireVersion: '5.22.14', postTimeoutMs: 60_000, logger }),
  logger,
  metrics,
  wireVersion: '5.22.14',
  maxAckResponseBytes: 16 * 1024 * 1024,
  removeXForwardedHeaders: false,
  vars,
});
const channel = {};
const tunnel = {
  role: 'primary',
  placement: { serverUrl: 'http://127.0.0.1:40124' },
  capabilities: overTunnel ? ['receive-post-streams', TUNNEL_ANSWERS_CAPABILITY] : ['receive-post-streams'],
  channel,
  requestsHandled: 0,
  ackInflight: 0,
  sendAnswer: () => Promise.resolve(true),
} as unknown as Tunnel;

/** A request event's payload as the client has it after decoding (wrk's GET /small through our server). */
function payload() {
  const id = randomUUID();
  return { url: '/small', method: 'GET', headers: { host: '127.0.0.1:40125', 'snyk-request-id': id }, streamingID: id };
}

async function round(n: number): Promise<number> {
  const events = Array.from({ length: n }, payload);
  const before = process.cpuUsage();
  for (let i = 0; i < n; i += CONCURRENCY) {
    for (let j = i; j < Math.min(n, i + CONCURRENCY); j++) relay.onEvent(tunnel, 'request', [events[j]], undefined);
    await relay.settle(10_000);
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
await round(20_000); // warm-up: JIT, caches
const results: number[] = [];
for (let r = 0; r < ROUNDS; r++) results.push(await round(REQUESTS));
process.stdout.write(`client relay (${overTunnel ? 'answers over the tunnel' : 'answers by POST'}), µs CPU per request: median ${median(results).toFixed(2)} (${results.map((x) => x.toFixed(2)).join(' ')})\n`);
