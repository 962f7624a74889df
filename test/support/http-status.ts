import { request } from 'undici';

/** The status of a GET, or 0 when nothing answered within `timeoutMs`: for polling with waitFor. */
export async function httpStatus(url: string, timeoutMs = 3000): Promise<number> {
  try {
    const r = await request(url, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs, reset: true });
    await r.body.dump();
    return r.statusCode;
  } catch {
    return 0;
  }
}
