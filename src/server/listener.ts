import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { ServerConfig } from '../config/server.js';

/**
 * The server's listening socket: plain HTTP, or TLS when HTTPS_CERT/HTTPS_KEY are set (the real
 * snyk-broker server's variables). Tunnel upgrades, the platform API and health share it either way.
 */
export function createListener(tls: ServerConfig['tls'], handler: (req: IncomingMessage, res: ServerResponse) => void): Server {
  if (!tls) return createHttpServer(handler);
  // https.Server is an http.Server for everything used here (request, upgrade, clientError, timeouts).
  return createHttpsServer({ cert: tls.cert, key: tls.key }, handler) as unknown as Server;
}
