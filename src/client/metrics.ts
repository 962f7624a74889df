import { Counter, Gauge, createRegistry, type Registry } from '../observability/metrics.js';

/** The client's Prometheus metrics, on a registry of its own (one per client instance). */
export function createClientMetrics(registry: Registry = createRegistry('broker_client')) {
  return {
    registry,
    tunnelsOpen: new Gauge({ name: 'broker_client_tunnels_open', help: 'Tunnels open (identified) by role', labelNames: ['role'], registers: [registry] }),
    tunnelConnects: new Counter({ name: 'broker_client_tunnel_connects_total', help: 'Tunnels that became ready, by role', labelNames: ['role'], registers: [registry] }),
    requests: new Counter({
      name: 'broker_client_requests_total',
      help: 'Requests relayed: inbound = broker server to origin, webhook = local HTTP to broker server; by status class',
      labelNames: ['direction', 'status'],
      registers: [registry],
    }),
    answers: new Counter({
      name: 'broker_client_answers_total',
      help: 'Answers delivered to the broker server, by path: response-data (POST), tunnel (binary frame, our server only), ack, chunk',
      labelNames: ['via'],
      registers: [registry],
    }),
    tunnelRequests: new Counter({ name: 'broker_client_tunnel_requests_total', help: 'Requests received per tunnel (connection role)', labelNames: ['role'], registers: [registry] }),
    bytes: new Counter({ name: 'broker_client_relayed_bytes_total', help: 'Body bytes relayed, by direction', labelNames: ['direction'], registers: [registry] }),
    allocations: new Counter({ name: 'broker_client_allocations_total', help: 'Dispatcher allocation calls by outcome', labelNames: ['outcome'], registers: [registry] }),
    relaysInFlight: new Gauge({ name: 'broker_client_relays_in_flight', help: 'Requests from the broker server being relayed (origin call and answer delivery)', registers: [registry] }),
    ready: new Gauge({ name: 'broker_client_ready', help: '1 when at least one tunnel is ready and the client is not draining', registers: [registry] }),
  };
}

export type ClientMetrics = ReturnType<typeof createClientMetrics>;
