import { Agent, request, type AgentOptions } from 'node:http';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Env } from '../config/env.js';

/** NO_PROXY semantics as curl/undici: `*`, exact hosts, domain suffixes, optional :port. */
export function bypassesProxy(url: URL, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const port = url.port || (url.protocol === 'https:' || url.protocol === 'wss:' ? '443' : '80');
  for (const raw of noProxy.split(/[,\s]+/).filter(Boolean)) {
    if (raw === '*') return true;
    const [entryHost, entryPort] = raw.toLowerCase().replace(/^\*?\./, '.').split(':') as [string, string | undefined];
    if (entryPort && entryPort !== port) continue;
    const bare = entryHost.replace(/^\./, '');
    if (host === bare || host.endsWith(`.${bare}`)) return true;
  }
  return false;
}

/**
 * An http.Agent that reaches the target through an HTTP proxy with CONNECT (then TLS for
 * wss), so the websocket tunnels honour HTTP(S)_PROXY like every other outbound call.
 */
export class ConnectProxyAgent extends Agent {
  constructor(
    private readonly proxy: URL,
    private readonly secure: boolean,
    private readonly tlsOptions: ConnectionOptions = {},
    options: AgentOptions = {},
  ) {
    super({ keepAlive: false, ...options });
  }

  override createConnection(options: { host?: string; port?: number | string; servername?: string }, callback: (err: Error | null, socket?: Duplex) => void): undefined {
    const target = `${options.host}:${options.port}`;
    const headers: Record<string, string> = { host: target };
    if (this.proxy.username) {
      const cred = `${decodeURIComponent(this.proxy.username)}:${decodeURIComponent(this.proxy.password)}`;
      headers['proxy-authorization'] = `Basic ${Buffer.from(cred).toString('base64')}`;
    }
    const req = request({ host: this.proxy.hostname, port: this.proxy.port || 80, method: 'CONNECT', path: target, headers, agent: false });
    req.once('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        callback(new Error(`proxy CONNECT to ${target} answered ${res.statusCode}`));
        return;
      }
      if (!this.secure) return callback(null, socket);
      const tls = tlsConnect({ ...this.tlsOptions, socket, servername: options.servername ?? options.host });
      tls.once('secureConnect', () => callback(null, tls));
      tls.once('error', (err: Error) => callback(err));
    });
    req.once('error', (err) => callback(err));
    req.end();
    return undefined;
  }
}

/** The agent for tunnels to `serverUrl`, or undefined when no proxy applies. */
export function createProxyAgent(serverUrl: string, env: Env, tlsOptions: ConnectionOptions = {}): Agent | undefined {
  const url = new URL(serverUrl);
  const secure = url.protocol === 'https:';
  const proxyRaw = secure ? (env.HTTPS_PROXY ?? env.https_proxy ?? env.HTTP_PROXY ?? env.http_proxy) : (env.HTTP_PROXY ?? env.http_proxy);
  if (!proxyRaw || bypassesProxy(url, env.NO_PROXY ?? env.no_proxy)) return undefined;
  let proxy: URL;
  try {
    proxy = new URL(proxyRaw);
  } catch {
    return undefined;
  }
  return new ConnectProxyAgent(proxy, secure, tlsOptions);
}
