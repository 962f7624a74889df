import { randomUUID } from 'node:crypto';
import type { Logger } from '../observability/logger.js';
import type { Egress } from '../http/egress.js';
import { describeError } from '../http/errors.js';
import { delay, waitAtMost } from '../http/backoff.js';
import { CLIENT_INSTANCE_QUERY, hashToken, parseClientInstance } from '../protocol/index.js';
import type { ServerMetrics } from './metrics.js';

export interface DispatcherReporterConfig {
  dispatcherUrl: string;
  dispatcherVersion: string;
  serverId: string;
  healthCheckLink: string;
  peerUrl: string;
  /** BROKER_SERVER_PUBLIC_URL: sent as public_url, the dispatcher hands it to clients as server_url. */
  publicUrl?: string;
  internalSecret?: string;
  /** Per attempt (the real server: 2500 ms). */
  timeoutMs?: number;
  /** Delays before the retries (the real server: about 200/400/800 ms). */
  retryDelaysMs?: number[];
  /** Events waiting beyond this are dropped (pings first), so a dead dispatcher costs bounded memory. */
  maxQueued?: number;
  /** server-starting is re-sent this often while running (0 = never), so a lost registration or a dispatcher restart heals. */
  registerIntervalMs?: number;
}

export interface DispatcherReporterHooks {
  /** Open tunnels, sent as `open_tunnels` with every registration. */
  openTunnels?: () => number;
  /** The dispatcher did not know this server (answer header x-broker-dispatcher-register): after re-registering, re-announce the open tunnels. */
  reannounce?: () => void;
}

/** Answer header of our dispatcher asking a server it only knows from reports to register again. */
export const REGISTER_HINT_HEADER = 'x-broker-dispatcher-register';

/** The server → dispatcher calls of protocol.md §6.4. Fire and forget: never on the request path. */
export interface DispatcherReporter {
  /** Registers, then keeps re-registering every registerIntervalMs until serverStopping/close. */
  serverStarting(): void;
  clientConnected(token: string, clientId: string, clientVersion: string, role?: string, instance?: string): void;
  clientPinged(token: string, clientId: string, clientVersion: string, latencyMs: number, role?: string, instance?: string): void;
  clientDisconnected(token: string, clientId: string, role?: string, instance?: string): void;
  /** Queued behind nothing: sent at once, resolves when done (or given up). */
  serverStopping(): Promise<void>;
  /** Waits (bounded) for queued reports, then stops. */
  close(timeoutMs?: number): Promise<void>;
}

export function noopDispatcherReporter(): DispatcherReporter {
  return {
    serverStarting() {},
    clientConnected() {},
    clientPinged() {},
    clientDisconnected() {},
    async serverStopping() {},
    async close() {},
  };
}

type EventName = 'server-starting' | 'client-connected' | 'client-pinged' | 'client-disconnected' | 'server-stopping';

interface Call {
  event: EventName;
  method: 'POST' | 'DELETE';
  path: string;
  query: Record<string, string>;
  body?: unknown;
}

const LANES = 4;

export function createDispatcherReporter(config: DispatcherReporterConfig, deps: { egress: Egress; logger: Logger; metrics: ServerMetrics } & DispatcherReporterHooks): DispatcherReporter {
  const { egress, logger, metrics } = deps;
  const registerIntervalMs = config.registerIntervalMs ?? 15_000;
  let registerTimer: NodeJS.Timeout | undefined;
  /** No registration after server-stopping: re-registering would put a draining server back into placement. */
  let stoppingSent = false;
  const timeoutMs = config.timeoutMs ?? 2500;
  const retryDelays = config.retryDelaysMs ?? [200, 400, 800];
  const maxQueued = config.maxQueued ?? 1000;
  const base = `${config.dispatcherUrl}/internal/brokerservers/${encodeURIComponent(config.serverId)}`;
  const lanes: Call[][] = Array.from({ length: LANES }, () => []);
  const running: Array<Promise<void> | undefined> = Array.from({ length: LANES }, () => undefined);
  let queued = 0;
  let closed = false;
  /** While closing, queued reports still go out but no new ones are taken. */
  let closing = false;

  function url(call: Call): string {
    // `version` goes last, as the real server sends it.
    const params = new URLSearchParams({ ...call.query, version: config.dispatcherVersion });
    return `${base}${call.path}?${params.toString().replace(/~/g, '%7E')}`;
  }

  async function send(call: Call): Promise<void> {
    const body = call.body === undefined ? undefined : JSON.stringify(call.body);
    for (let attempt = 0; attempt <= retryDelays.length; attempt++) {
      if (attempt > 0) await delay(retryDelays[attempt - 1]);
      if (call.event === 'server-starting' && stoppingSent) return;
      try {
        const headers: Record<string, string> = {
          accept: 'application/json, text/plain, */*',
          'content-type': 'application/vnd.api+json',
          'snyk-request-id': randomUUID(),
          'user-agent': 'ha-broker-server',
        };
        if (config.internalSecret) headers['x-broker-internal-secret'] = config.internalSecret;
        const res = await egress.request(url(call), { method: call.method, headers, body, signal: AbortSignal.timeout(timeoutMs) });
        await res.body.dump().catch(() => undefined);
        if (res.headers[REGISTER_HINT_HEADER] === 'true') {
          // On a registration: the dispatcher did not know us (it restarted empty), announce the open tunnels now.
          if (call.event === 'server-starting') reannounce();
          else if (call.event !== 'server-stopping') onRegisterHint();
        }
        if (res.statusCode >= 200 && res.statusCode < 300) {
          metrics.dispatcherCalls.inc({ event: call.event, outcome: 'ok' });
          return;
        }
        logger.warn({ event: call.event, status: res.statusCode, attempt }, 'dispatcher answered with an error status');
      } catch (err) {
        logger.warn({ event: call.event, attempt, error: describeError(err) }, 'dispatcher call failed');
      }
    }
    metrics.dispatcherCalls.inc({ event: call.event, outcome: 'failed' });
    logger.error({ event: call.event }, 'dispatcher call given up after retries');
  }

  function laneOf(key: string): number {
    let h = 0;
    for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) | 0;
    return Math.abs(h) % LANES;
  }

  function pump(lane: number): void {
    if (running[lane] || closed) return;
    const next = lanes[lane].shift();
    if (!next) return;
    queued--;
    running[lane] = send(next).finally(() => {
      running[lane] = undefined;
      pump(lane);
    });
  }

  /** Events of one connection share a lane, so connected/disconnected keep their order. */
  function enqueue(key: string, call: Call): void {
    if (closed || closing) return;
    if (queued >= maxQueued) {
      // Drop the oldest ping anywhere; if none, drop this report.
      const lane = lanes.find((l) => l.some((c) => c.event === 'client-pinged'));
      if (lane) {
        lane.splice(lane.findIndex((c) => c.event === 'client-pinged'), 1);
        queued--;
      } else {
        metrics.dispatcherCalls.inc({ event: call.event, outcome: 'dropped' });
        logger.warn({ event: call.event }, 'dispatcher report queue full; report dropped');
        return;
      }
    }
    const lane = laneOf(key);
    lanes[lane].push(call);
    queued++;
    pump(lane);
  }

  const connectionPath = (token: string) => `/connections/${hashToken(token)}`;
  const attributes = (extra: Record<string, string | number> = {}) => ({
    data: { attributes: { health_check_link: config.healthCheckLink, peer_url: config.peerUrl, ...(config.publicUrl ? { public_url: config.publicUrl } : {}), ...extra } },
  });
  /** connection_role (our extra) lets the dispatcher count a client's tunnels exactly even when a report is retried. */
  const roleQuery = (role: string | undefined): Record<string, string> => (role && /^[A-Za-z0-9_-]{1,32}$/.test(role) ? { connection_role: role } : {});
  /** broker_client_instance (our extra): which of the processes sharing a client id the tunnel belongs to. */
  const instanceQuery = (instance: string | undefined): Record<string, string> => {
    const v = parseClientInstance(instance);
    return v ? { [CLIENT_INSTANCE_QUERY]: v } : {};
  };

  /** Queues a registration unless one is already waiting (a dead dispatcher must not pile them up). */
  function register(): boolean {
    if (stoppingSent || closed) return false;
    if (lanes.some((l) => l.some((c) => c.event === 'server-starting'))) return false;
    const openTunnels = deps.openTunnels?.() ?? 0;
    enqueue('server', { event: 'server-starting', method: 'POST', path: '', query: {}, body: attributes({ open_tunnels: openTunnels }) });
    return true;
  }

  let lastHintAt = -Infinity;
  function onRegisterHint(): void {
    // Every report from an unknown server carries the hint until it registered: act once per few seconds.
    const now = Date.now();
    if (now - lastHintAt < 5000) return;
    lastHintAt = now;
    logger.info('the dispatcher does not know this server; registering again');
    if (register()) reannounce();
  }

  let lastReannounceAt = -Infinity;
  /** At most once per few seconds: a report hint and the registration's answer may both ask. */
  function reannounce(): void {
    const now = Date.now();
    if (now - lastReannounceAt < 5000) return;
    lastReannounceAt = now;
    deps.reannounce?.();
  }

  return {
    serverStarting() {
      register();
      if (registerIntervalMs > 0 && !registerTimer) {
        registerTimer = setInterval(register, registerIntervalMs);
        registerTimer.unref();
      }
    },
    clientConnected(token, clientId, clientVersion, role, instance) {
      enqueue(`${token}:${clientId}`, {
        event: 'client-connected',
        method: 'POST',
        path: connectionPath(token),
        query: { broker_client_id: clientId, ...roleQuery(role), ...instanceQuery(instance), request_type: 'client-connected' },
        body: attributes({ broker_client_version: clientVersion }),
      });
    },
    clientPinged(token, clientId, clientVersion, latencyMs, role, instance) {
      enqueue(`${token}:${clientId}`, {
        event: 'client-pinged',
        method: 'POST',
        path: connectionPath(token),
        query: { broker_client_id: clientId, ...roleQuery(role), ...instanceQuery(instance), latency: String(Math.max(0, Math.round(latencyMs))), request_type: 'client-pinged' },
        body: attributes({ broker_client_version: clientVersion }),
      });
    },
    clientDisconnected(token, clientId, role, instance) {
      enqueue(`${token}:${clientId}`, { event: 'client-disconnected', method: 'DELETE', path: connectionPath(token), query: { broker_client_id: clientId, ...roleQuery(role), ...instanceQuery(instance) } });
    },
    async serverStopping() {
      stoppingSent = true;
      clearInterval(registerTimer);
      // A registration still queued would undo the stop.
      for (const lane of lanes) {
        for (let i = lane.length - 1; i >= 0; i--) {
          if (lane[i].event === 'server-starting') {
            lane.splice(i, 1);
            queued--;
          }
        }
      }
      // Let a registration already on the wire land first (bounded), so the stop is the last word.
      const inFlightRegistration = running[laneOf('server')];
      if (inFlightRegistration) await waitAtMost(inFlightRegistration, 1000);
      await send({ event: 'server-stopping', method: 'DELETE', path: '', query: {} });
    },
    async close(waitMs = 5000) {
      clearInterval(registerTimer);
      closing = true;
      // Queued disconnects must still reach the dispatcher, or it keeps listing tunnels that are
      // gone and peers route to them; pings are moot now, so they are dropped.
      for (const lane of lanes) {
        for (let i = lane.length - 1; i >= 0; i--) {
          if (lane[i].event === 'client-pinged') {
            lane.splice(i, 1);
            queued--;
          }
        }
      }
      lanes.forEach((_, lane) => pump(lane));
      const flushed = (async () => {
        // Each finished call pumps its lane's next one, so wait until nothing runs any more.
        while (running.some(Boolean)) await Promise.all(running.filter(Boolean));
      })();
      await waitAtMost(flushed, waitMs);
      closed = true;
    },
  };
}
