import type { ServerResponse } from 'node:http';
import { sendFailure, sendJson } from '../../http/server-helpers.js';
import { FAILURES } from '../../protocol/failures.js';
import { VERSION } from '../../version.js';
import { connectionStatus, connectionsStatus } from '../status.js';
import type { ServerParts } from './context.js';

const CONNECTION_STATUS_PATH = /^\/connection-status\/([^/]+)\/?$/;

/**
 * The operator's and the platform's read-only endpoints (GET/HEAD): /healthcheck, /livez,
 * /readyz, /metrics, /connections-status, /connection-status/<token>; 404 for anything else.
 */
export function createStatusRoutes(parts: Pick<ServerParts, 'pool' | 'registry' | 'lifecycle'>) {
  const { pool, registry, lifecycle } = parts;
  return async function status(res: ServerResponse, path: string): Promise<void> {
    if (path === '/' || path === '/healthcheck') return sendJson(res, 200, { ok: true, version: VERSION });
    if (path === '/livez') return sendJson(res, 200, { ok: true });
    if (path === '/readyz') {
      const { started, draining } = lifecycle;
      return started && !draining ? sendJson(res, 200, { ok: true }) : sendJson(res, 503, { ok: false, reason: draining ? 'draining' : 'starting' });
    }
    if (path === '/metrics') {
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(text);
      return;
    }
    if (path === '/connections-status') return sendJson(res, 200, connectionsStatus(pool));
    const m = CONNECTION_STATUS_PATH.exec(path);
    if (m) {
      let token = '';
      try {
        token = decodeURIComponent(m[1]).toLowerCase();
      } catch {
        // falls through to 404
      }
      const body = connectionStatus(pool, token);
      return body ? sendJson(res, 200, body) : sendFailure(res, FAILURES.NO_CONNECTION, { ok: false });
    }
    return sendFailure(res, FAILURES.NOT_FOUND, { ok: false });
  };
}
