import { request } from 'undici';

/** The tunnels of `token` that are ready at a broker server (its /connection-status); 0 when it has none or cannot be asked. */
export async function readyTunnels(serverUrl: string, token: string): Promise<number> {
  try {
    const r = await request(`${serverUrl}/connection-status/${token}`, { reset: true, headersTimeout: 3000, bodyTimeout: 3000 });
    if (r.statusCode !== 200) {
      await r.body.dump();
      return 0;
    }
    const body = (await r.body.json()) as { clients: Array<{ state: string }> };
    return body.clients.filter((c) => c.state === 'ready').length;
  } catch {
    return 0;
  }
}
