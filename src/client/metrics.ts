import { Counter, Gauge, TalliedCounter, TalliedGauge, createRegistry, type Registry } from '../observability/metrics.js';

type Labels = Record<string, string | number>;

/** What the client does with a counter: prom-client's Counter, or one bound to a connection. */
export interface CounterLike {
  inc(labels: Labels, value?: number): void;
  inc(value?: number): void;
}

/** What the client does with a gauge. */
export interface GaugeLike extends CounterLike {
  set(labels: Labels, value: number): void;
  set(value: number): void;
  dec(labels: Labels, value?: number): void;
  dec(value?: number): void;
}

/**
 * The client's Prometheus metrics, on a registry of its own (one per client instance). Those
 * written for every relayed request are tallied (see TalliedCounter): prom-client's own calls
 * validate and hash the labels each time.
 */
export function createClientMetrics(registry: Registry = createRegistry('broker_client')) {
  return {
    registry,
    tunnelsOpen: new Gauge({ name: 'broker_client_tunnels_open', help: 'Tunnels open (identified) by role', labelNames: ['role', 'connection'], registers: [registry] }),
    tunnelConnects: new Counter({ name: 'broker_client_tunnel_connects_total', help: 'Tunnels that became ready, by role', labelNames: ['role', 'connection'], registers: [registry] }),
    requests: new TalliedCounter({
      name: 'broker_client_requests_total',
      help: 'Requests relayed: inbound = broker server to origin, webhook = local HTTP to broker server; by status class',
      labelNames: ['direction', 'status', 'connection'],
      registers: [registry],
    }),
    answers: new TalliedCounter({
      name: 'broker_client_answers_total',
      help: 'Answers delivered to the broker server, by path: response-data (POST), tunnel (one binary frame, our server only), tunnel-stream (binary frames with flow control, our server only), ack, chunk',
      labelNames: ['via', 'connection'],
      registers: [registry],
    }),
    tunnelRequests: new TalliedCounter({ name: 'broker_client_tunnel_requests_total', help: 'Requests received per tunnel (connection role)', labelNames: ['role', 'connection'], registers: [registry] }),
    bytes: new TalliedCounter({ name: 'broker_client_relayed_bytes_total', help: 'Body bytes relayed, by direction', labelNames: ['direction', 'connection'], registers: [registry] }),
    allocations: new Counter({ name: 'broker_client_allocations_total', help: 'Dispatcher allocation calls by outcome', labelNames: ['outcome', 'connection'], registers: [registry] }),
    relaysInFlight: new TalliedGauge({ name: 'broker_client_relays_in_flight', help: 'Requests from the broker server being relayed (origin call and answer delivery)', labelNames: ['connection'], registers: [registry] }),
    ready: new Gauge({ name: 'broker_client_ready', help: '1 when at least one tunnel is ready and the client is not draining', labelNames: ['connection'], registers: [registry] }),
  };
}

/** The metrics as the client's modules use them (a classic client's, or one connection's of a Universal client). */
export interface ClientMetrics {
  registry: Registry;
  tunnelsOpen: GaugeLike;
  tunnelConnects: CounterLike;
  requests: CounterLike;
  answers: CounterLike;
  tunnelRequests: CounterLike;
  bytes: CounterLike;
  allocations: CounterLike;
  relaysInFlight: GaugeLike;
  ready: GaugeLike;
}

/** The metrics themselves, as created (a Universal client labels them per connection). */
export type BaseClientMetrics = ReturnType<typeof createClientMetrics>;

/** Splits (labels, value) the way prom-client's overloads take them. */
function withLabel(connection: string, a: Labels | number | undefined, b: number | undefined): [Labels, number | undefined] {
  return typeof a === 'object' ? [{ ...a, connection }, b] : [{ connection }, a];
}

function boundCounter(c: Pick<CounterLike, 'inc'>, connection: string): CounterLike {
  return { inc: (a?: Labels | number, b?: number) => c.inc(...withLabel(connection, a, b)) };
}

function boundGauge(g: GaugeLike, connection: string): GaugeLike {
  return {
    inc: (a?: Labels | number, b?: number) => g.inc(...withLabel(connection, a, b)),
    dec: (a?: Labels | number, b?: number) => g.dec(...withLabel(connection, a, b)),
    set: (a: Labels | number, b?: number) => {
      const [labels, value] = withLabel(connection, a, b);
      g.set(labels, value ?? 0);
    },
  };
}

/**
 * A Universal client's connection writes the shared metrics with its `connection` label (its
 * name), so one /metrics tells the connections apart; a classic client never sets that label.
 */
export function metricsForConnection(base: BaseClientMetrics, connection: string): ClientMetrics {
  return {
    registry: base.registry,
    tunnelsOpen: boundGauge(base.tunnelsOpen, connection),
    tunnelConnects: boundCounter(base.tunnelConnects, connection),
    requests: boundCounter(base.requests, connection),
    answers: boundCounter(base.answers, connection),
    tunnelRequests: boundCounter(base.tunnelRequests, connection),
    bytes: boundCounter(base.bytes, connection),
    allocations: boundCounter(base.allocations, connection),
    relaysInFlight: boundGauge(base.relaysInFlight, connection),
    ready: boundGauge(base.ready, connection),
  };
}
