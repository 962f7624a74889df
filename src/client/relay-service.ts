import { randomUUID } from 'node:crypto';
import { parseRelayRequest, type RelayRequest, type Reply } from '../protocol/index.js';
import type { Tunnel } from './tunnel.js';
import type { RelayContext } from './relay-context.js';

/** `service` events from the broker server: commands to the client (filters/reload, Universal config/reload), answered by ack. */
export async function handleService(ctx: RelayContext, tunnel: Tunnel, raw: unknown, reply: Reply | undefined): Promise<void> {
  if (!reply) return;
  let req: RelayRequest;
  try {
    req = parseRelayRequest(raw);
  } catch (err) {
    reply({ status: 400, headers: {}, body: JSON.stringify({ ok: false, msg: (err as Error).message }) });
    return;
  }
  const requestId = typeof req.headers['snyk-request-id'] === 'string' ? (req.headers['snyk-request-id']) : randomUUID();
  const command = req.url.replace(/^\/+/, '').split('?')[0];
  if (command === 'filters/reload' && ctx.opts.reloadFilters) {
    try {
      await ctx.opts.reloadFilters();
      reply({ status: 200, headers: { requestId }, body: JSON.stringify({ ok: true, msg: 'Filters reloaded.' }) });
    } catch (err) {
      reply({ status: 500, headers: { requestId }, body: JSON.stringify({ ok: false, msg: `Filters reload failed: ${(err as Error).message}` }) });
    }
    return;
  }
  if (command === 'config/reload' && ctx.opts.reloadConfig) {
    // Snyk's exact ack, sent before the sync runs (the server only waits for the ack).
    reply({ status: 200, headers: { requestId }, body: JSON.stringify({ ok: true, msg: 'Synchronizing Config.' }) });
    ctx.opts.reloadConfig();
    return;
  }
  if (command === 'config/reload') {
    reply({ status: 501, headers: { requestId }, body: JSON.stringify({ ok: false, msg: 'Not implemented in classic mode.' }) });
    return;
  }
  ctx.log.warn({ role: tunnel.role, command }, 'unknown service command');
  reply({ status: 400, headers: { requestId }, body: JSON.stringify({ ok: false, msg: 'Unknown service command.' }) });
}
