import { Counter, Gauge, TalliedCounter, TalliedGauge, TalliedHistogram, type Registry } from '../observability/metrics.js';

/**
 * The server's metrics. Labels never carry a token: connections are `<clientId>:<role>`,
 * tokens appear only as their sha256 (the identifier the wire already uses publicly).
 */
export interface ServerMetrics {
  connections: Gauge<'token_hash'>;
  /** Per relayed request, so tallied (see TalliedCounter), as are the outcomes, bytes, in-flight count and latency. */
  relayed: TalliedCounter<'connection'>;
  relayOutcomes: TalliedCounter<'outcome'>;
  relayRetries: Counter<'reason'>;
  relayHedges: Counter<'target'>;
  probeMisses: Counter;
  relayLatency: TalliedHistogram<'variant'>;
  bytes: TalliedCounter<'direction'>;
  inFlight: TalliedGauge;
  webhooks: Counter<'outcome'>;
  dispatcherCalls: Counter<'event' | 'outcome'>;
  badFrames: Counter;
  peerForwards: Counter<'outcome'>;
  tunnelForwards: Counter<'kind' | 'outcome'>;
  authChecks: Counter<'kind' | 'outcome'>;
}

export function createServerMetrics(registry: Registry): ServerMetrics {
  return {
    connections: new Gauge({ name: 'broker_server_connections', help: 'Ready tunnel connections per token (sha256 of the token)', labelNames: ['token_hash'], registers: [registry] }),
    relayed: new TalliedCounter({ name: 'broker_server_relayed_requests_total', help: 'Platform requests sent over each connection (<clientId>:<role>)', labelNames: ['connection'], registers: [registry] }),
    relayOutcomes: new TalliedCounter({ name: 'broker_server_relay_outcomes_total', help: 'Platform requests by outcome', labelNames: ['outcome'], registers: [registry] }),
    relayRetries: new Counter({ name: 'broker_server_relay_retries_total', help: 'Relays moved to another connection, by reason', labelNames: ['reason'], registers: [registry] }),
    relayHedges: new Counter({
      name: 'broker_server_relay_hedges_total',
      help: 'Idempotent requests sent again because the tunnel (target=tunnel) or peer server (target=peer) carrying them stopped answering probes',
      labelNames: ['target'],
      registers: [registry],
    }),
    probeMisses: new Counter({
      name: 'broker_server_tunnel_probe_misses_total',
      help: 'Busy tunnels that did not answer a probe in time and were taken for hung (a healthy client never should)',
      registers: [registry],
    }),
    relayLatency: new TalliedHistogram({
      name: 'broker_server_relay_latency_seconds',
      help: 'Time from a platform request to the start of the answer (head)',
      labelNames: ['variant'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    bytes: new TalliedCounter({ name: 'broker_server_relay_bytes_total', help: 'Body bytes relayed (request: platform to client, response: client to platform)', labelNames: ['direction'], registers: [registry] }),
    inFlight: new TalliedGauge({ name: 'broker_server_relays_in_flight', help: 'Platform requests waiting or streaming', registers: [registry] }),
    webhooks: new Counter({ name: 'broker_server_webhooks_total', help: 'Webhook requests from clients by outcome', labelNames: ['outcome'], registers: [registry] }),
    dispatcherCalls: new Counter({ name: 'broker_server_dispatcher_calls_total', help: 'Dispatcher reports by event and outcome', labelNames: ['event', 'outcome'], registers: [registry] }),
    badFrames: new Counter({ name: 'broker_server_bad_frames_total', help: 'Tunnel messages that could not be decoded', registers: [registry] }),
    peerForwards: new Counter({ name: 'broker_server_peer_forwards_total', help: 'Platform requests sent to a peer server holding tunnels of the token, by outcome', labelNames: ['outcome'], registers: [registry] }),
    tunnelForwards: new Counter({
      name: 'broker_server_tunnel_forwards_total',
      help: 'Tunnel requests (polling, websocket upgrade) and answer uploads sent on to the server they belong to, by outcome (forwarded, unreachable)',
      labelNames: ['kind', 'outcome'],
      registers: [registry],
    }),
    authChecks: new Counter({
      name: 'broker_server_auth_checks_total',
      help: 'Mandatory auth: credential checks by kind (handshake, refresh, response-data, stale) and outcome (accepted, or the failure reason; stale: closed)',
      labelNames: ['kind', 'outcome'],
      registers: [registry],
    }),
  };
}
