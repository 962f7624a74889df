import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One call the fake validation endpoint received. */
export interface ValidationCall {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An unsigned JWT (`alg: none`) with these claims: the broker server only decodes it. */
export function unsignedJwt(claims: Record<string, unknown>): string {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.c2ln`;
}

/**
 * Snyk's credential validation endpoint in miniature (POST …/auth/validate): 201 when the
 * `authorization` header is one of `good`, 401 otherwise; `hang` leaves calls unanswered.
 * Every call is recorded.
 */
export class FakeValidation {
  readonly calls: ValidationCall[] = [];
  readonly good = new Set<string>();
  hang = false;
  readonly #server: Server;
  readonly #hanging = new Set<ServerResponse>();
  url = '';

  constructor(good: string[] = []) {
    for (const g of good) this.good.add(g);
    this.#server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        this.calls.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        if (this.hang) {
          this.#hanging.add(res);
          return;
        }
        const ok = typeof req.headers.authorization === 'string' && this.good.has(req.headers.authorization);
        res.writeHead(ok ? 201 : 401, { 'content-type': 'application/vnd.api+json' });
        res.end(ok ? '{"data":{}}' : '{"errors":[{"status":"401"}]}');
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
