import type { Logger } from '../observability/logger.js';
import type { Egress } from '../http/egress.js';
import { waitAtMost } from '../http/backoff.js';
import type { ServerMetrics } from './metrics.js';
import {
  clientConnectedCall,
  clientDisconnectedCall,
  clientPingedCall,
  serverStartingCall,
  serverStoppingCall,
  type DispatcherEvent,
} from './dispatcher-report-calls.js';
import { createDispatcherSender } from './dispatcher-report-sender.js';
import { DispatcherReportQueue } from './dispatcher-report-queue.js';

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

/** `fn`, except that a call within `ms` of the last one that ran is skipped. */
function atMostEvery(ms: number, fn: () => void): () => void {
  let lastAt = -Infinity;
  return () => {
    const now = Date.now();
    if (now - lastAt < ms) return;
    lastAt = now;
    fn();
  };
}

export function createDispatcherReporter(config: DispatcherReporterConfig, deps: { egress: Egress; logger: Logger; metrics: ServerMetrics } & DispatcherReporterHooks): DispatcherReporter {
  const { logger, metrics } = deps;
  const registerIntervalMs = config.registerIntervalMs ?? 15_000;
  let registerTimer: NodeJS.Timeout | undefined;
  /** No registration after server-stopping: re-registering would put a draining server back into placement. */
  let stoppingSent = false;
  const send = createDispatcherSender(
    {
      base: `${config.dispatcherUrl}/internal/brokerservers/${encodeURIComponent(config.serverId)}`,
      dispatcherVersion: config.dispatcherVersion,
      internalSecret: config.internalSecret,
      timeoutMs: config.timeoutMs ?? 2500,
      retryDelays: config.retryDelaysMs ?? [200, 400, 800],
      stopping: () => stoppingSent,
      onRegisterHint: (event: DispatcherEvent) => {
        // On a registration: the dispatcher did not know us (it restarted empty), announce the open tunnels now.
        if (event === 'server-starting') reannounce();
        else if (event !== 'server-stopping') onRegisterHint();
      },
    },
    deps,
  );
  const queue = new DispatcherReportQueue(send, {
    maxQueued: config.maxQueued ?? 1000,
    dropped: (call) => {
      metrics.dispatcherCalls.inc({ event: call.event, outcome: 'dropped' });
      logger.warn({ event: call.event }, 'dispatcher report queue full; report dropped');
    },
  });

  /** Queues a registration unless one is already waiting (a dead dispatcher must not pile them up). */
  function register(): boolean {
    if (stoppingSent || queue.closed) return false;
    if (queue.has('server-starting')) return false;
    queue.enqueue('server', serverStartingCall(config, deps.openTunnels?.() ?? 0));
    return true;
  }

  // Every report from an unknown server carries the hint until it registered: act once per few seconds.
  const onRegisterHint = atMostEvery(5000, () => {
    logger.info('the dispatcher does not know this server; registering again');
    if (register()) reannounce();
  });
  /** At most once per few seconds: a report hint and the registration's answer may both ask. */
  const reannounce = atMostEvery(5000, () => deps.reannounce?.());

  return {
    serverStarting() {
      register();
      if (registerIntervalMs > 0 && !registerTimer) {
        registerTimer = setInterval(register, registerIntervalMs);
        registerTimer.unref();
      }
    },
    clientConnected(token, clientId, clientVersion, role, instance) {
      queue.enqueue(`${token}:${clientId}`, clientConnectedCall(config, token, clientId, clientVersion, role, instance));
    },
    clientPinged(token, clientId, clientVersion, latencyMs, role, instance) {
      queue.enqueue(`${token}:${clientId}`, clientPingedCall(config, token, clientId, clientVersion, latencyMs, role, instance));
    },
    clientDisconnected(token, clientId, role, instance) {
      queue.enqueue(`${token}:${clientId}`, clientDisconnectedCall(token, clientId, role, instance));
    },
    async serverStopping() {
      stoppingSent = true;
      clearInterval(registerTimer);
      // A registration still queued would undo the stop.
      queue.remove('server-starting');
      // Let a registration already on the wire land first (bounded), so the stop is the last word.
      const inFlightRegistration = queue.inFlight('server');
      if (inFlightRegistration) await waitAtMost(inFlightRegistration, 1000);
      await send(serverStoppingCall());
    },
    async close(waitMs = 5000) {
      clearInterval(registerTimer);
      queue.stopTaking();
      // Queued disconnects must still reach the dispatcher, or it keeps listing tunnels that are
      // gone and peers route to them; pings are moot now, so they are dropped.
      queue.remove('client-pinged');
      await queue.flush(waitMs);
    },
  };
}
