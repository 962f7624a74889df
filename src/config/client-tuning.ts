import type { EnvReader } from './env.js';

/** The client's timings, sizes and behaviour switches. */
export interface ClientTuning {
  pingIntervalMs: number;
  pongTimeoutMs: number;
  connectTimeoutMs: number;
  postTimeoutMs: number;
  /** Cap of an answer carried in one ack (SOCKET_MAX_RESPONSE_LENGTH). */
  maxAckResponseBytes: number;
  /** Largest tunnel frame we decode (bigger ones are logged and dropped). */
  maxFrameBytes: number;
  webhookBodyLimit: number;
  webhookTimeoutMs: number;
  drainGraceMs: number;
  preflightEnabled: boolean;
  removeXForwardedHeaders: boolean;
  /** Small answers go back as one binary frame on the tunnel when our server offers it (never with snyk-broker's server). */
  tunnelAnswers: boolean;
  /** Larger answers stream over the tunnel (credit windows) when our server offers it; off: they are posted. */
  tunnelStreams: boolean;
}

export function readClientTuning(r: EnvReader): ClientTuning {
  return {
    pingIntervalMs: r.int('SOCKET_PING_INTERVAL', 25_000, { min: 100, max: 600_000 }),
    pongTimeoutMs: r.int('SOCKET_PONG_TIMEOUT', 10_000, { min: 100, max: 600_000 }),
    connectTimeoutMs: r.int('SOCKET_CONNECT_TIMEOUT', 10_000, { min: 100, max: 600_000 }),
    postTimeoutMs: r.int('BROKER_CLIENT_POST_TIMEOUT', 1_200_000, { min: 1000 }),
    maxAckResponseBytes: r.int('SOCKET_MAX_RESPONSE_LENGTH', 20_971_520, { min: 1024 }),
    maxFrameBytes: r.int('BROKER_CLIENT_MAX_FRAME_BYTES', 22_020_096, { min: 1024 }),
    webhookBodyLimit: r.int('BROKER_CLIENT_WEBHOOK_BODY_LIMIT', 10 * 1024 * 1024, { min: 1024 }),
    webhookTimeoutMs: r.int('BROKER_CLIENT_WEBHOOK_TIMEOUT_MS', 120_000, { min: 100 }),
    drainGraceMs: r.int('BROKER_CLIENT_DRAIN_GRACE_MS', 25_000, { min: 0 }),
    preflightEnabled: r.bool('PREFLIGHT_CHECKS_ENABLED', true),
    removeXForwardedHeaders: r.bool('REMOVE_X_FORWARDED_HEADERS', false),
    tunnelAnswers: r.bool('BROKER_CLIENT_TUNNEL_ANSWERS', true),
    // Off by default: on loopback the POST moved large answers faster (bench/README.md, round 6).
    tunnelStreams: r.bool('BROKER_CLIENT_TUNNEL_STREAMS', false),
  };
}
