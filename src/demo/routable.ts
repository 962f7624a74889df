import { request } from 'undici';

/**
 * Whether every server can serve a connection: a probe of `path` (`/broker/<identifier>/...`)
 * straight to each server answers 200. A server holding none of its tunnels needs the dispatcher
 * to have its peers' reports and its own routing cache to be fresh, so the first seconds after
 * the tunnels open could still give 404s. The platform traffic of a connection waits for this.
 * Sticky: once every server has served it, the answer stays yes.
 */
export function watchRoutable(serverPorts: number[], path: string): { routable(): boolean; stop(): void } {
  const served = new Set<number>();
  const probe = async (port: number) => {
    try {
      const res = await request(`http://127.0.0.1:${port}${path}`, { headersTimeout: 2000, bodyTimeout: 2000 });
      await res.body.dump();
      if (res.statusCode === 200) served.add(port);
    } catch {
      // that server is not up yet
    }
  };
  let busy = false;
  const timer = setInterval(() => {
    if (served.size === serverPorts.length) return clearInterval(timer);
    if (busy) return;
    busy = true;
    void Promise.all(serverPorts.filter((p) => !served.has(p)).map(probe)).finally(() => (busy = false));
  }, 250);
  return { routable: () => served.size === serverPorts.length, stop: () => clearInterval(timer) };
}
