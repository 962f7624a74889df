import type { Server } from 'node:http';
import { delay, waitAtMost } from '../http/backoff.js';
import { closeServer } from '../http/server-helpers.js';
import type { DispatcherReporter } from './dispatcher-reporter.js';
import type { ServerParts } from './routes/context.js';

/**
 * The SIGTERM path: refuse new tunnels and requests, let those in flight finish within
 * BROKER_SERVER_DRAIN_GRACE_MS, stay reachable for peers a routing refresh longer, then close
 * the tunnels, the HTTP server, the dispatcher reporter and the egress stack.
 */
export async function drainAndClose(parts: ServerParts, io: { http: Server; dispatcher: DispatcherReporter }, reason: string): Promise<void> {
  const { config, logger, lifecycle, relays, forwards, tunnels, routing, passingTunnels, egress } = parts;
  const { http, dispatcher } = io;
  const deadline = Date.now() + config.drainGraceMs;
  lifecycle.draining = true;
  logger.info({ reason, inFlight: relays.size, connections: tunnels.connections().size, graceMs: config.drainGraceMs }, 'draining: refusing new tunnels and requests');
  const stoppingReport = dispatcher.serverStopping().catch(() => undefined);
  tunnels.drainAll('server-draining');
  // Forwards started during the drain are awaited too (a loop: new ones may begin while we wait).
  while ((relays.size > 0 || forwards.size > 0) && Date.now() < deadline) {
    await waitAtMost(Promise.all([...[...relays].map((r) => r.done), ...forwards]), deadline - Date.now());
  }
  if (relays.size > 0) logger.warn({ unfinished: relays.size }, 'drain grace period over; cutting unfinished relays');
  // Peers learn we are stopping at their next routing refresh; until then they may still forward
  // to us. Stay reachable (answering 503 server-draining, which they treat as "not relayed") for
  // one refresh, so a forwarded POST never meets a closing socket.
  if (routing) {
    await delay(Math.max(0, Math.min(config.routingRefreshMs + 500, deadline - Date.now())));
    while (forwards.size > 0 && Date.now() < deadline) await waitAtMost(Promise.all([...forwards]), deadline - Date.now());
  }
  await waitAtMost(stoppingReport, Math.max(1000, deadline - Date.now()));
  await tunnels.close(Math.min(1000, Math.max(100, deadline - Date.now())));
  // Tunnels of peers that pass through here: their servers saw us stopping (routing refresh)
  // and send their clients away once idle; wait for that, then cut whatever is left.
  while (passingTunnels.size > 0 && Date.now() < deadline) await delay(Math.min(100, deadline - Date.now()));
  if (passingTunnels.size > 0) logger.warn({ passing: passingTunnels.size }, 'drain grace period over; cutting tunnels of peers that pass through here');
  for (const socket of passingTunnels) socket.destroy();
  // Stop accepting first and let requests already on a connection finish (while draining they
  // are answered at once), so no caller sees a reset; whatever still lingers is then cut.
  await waitAtMost(closeServer(http), 2000);
  http.closeAllConnections?.();
  routing?.stop();
  await dispatcher.close(1000);
  await egress.close().catch(() => undefined);
  logger.info({ reason }, 'broker server stopped');
}
