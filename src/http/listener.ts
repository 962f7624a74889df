import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';

/**
 * A listening socket for the server's API or the client's local port: plain HTTP, or TLS when
 * HTTPS_CERT/HTTPS_KEY are set (snyk-broker's variables, read and checked by the config).
 */
export function createListener(tls: { cert: Buffer; key: Buffer } | undefined, handler: (req: IncomingMessage, res: ServerResponse) => void): Server {
  if (!tls) return createHttpServer(handler);
  // https.Server is an http.Server for everything used here (request, upgrade, clientError, timeouts).
  return createHttpsServer({ cert: tls.cert, key: tls.key }, handler);
}
