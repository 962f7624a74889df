import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ServerConfig } from '../../config/server.js';
import { describeError } from '../../http/errors.js';
import { createListener } from '../../http/listener.js';
import { clientErrorHandler, sendFailure } from '../../http/server-helpers.js';
import { FAILURES, PARSER_FAILURES } from '../../protocol/failures.js';
import type { Logger } from '../../observability/logger.js';

/**
 * The server's HTTP(S) listener with its timeouts: a handler that throws answers 500 (or cuts a
 * started answer), never crashes the process; parser errors get their x-broker-failure.
 */
export function createHttpServer(
  config: Pick<ServerConfig, 'tls' | 'headersTimeoutMs'>,
  logger: Logger,
  onRequest: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
): Server {
  const http: Server = createListener(config.tls, (req, res) => {
    onRequest(req, res).catch((err) => {
      logger.error({ error: describeError(err) }, 'request handler failed');
      if (!res.headersSent) sendFailure(res, FAILURES.INTERNAL_ERROR, { ok: false });
      else res.destroy();
    });
  });
  // Answer uploads can stream for a long time; only the headers are bounded.
  http.requestTimeout = 0;
  http.headersTimeout = config.headersTimeoutMs;
  // Node enforces headersTimeout on this check interval (30 s by default, read at listen).
  (http as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.min(30_000, Math.max(100, Math.floor(config.headersTimeoutMs / 4)));
  http.keepAliveTimeout = 65_000;
  http.on('upgrade', onUpgrade);
  // 431 oversized head, 408 headers too slow, 400 malformed or ambiguous (smuggling), each with x-broker-failure.
  http.on('clientError', clientErrorHandler(PARSER_FAILURES));
  return http;
}
