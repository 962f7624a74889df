import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';

export interface PlatformAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One platform request to a broker server (`/broker/<token>/...`), its whole answer read as text. */
export function platform(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<PlatformAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}
