// A fake GitHub (Enterprise) for GitHub App tests, over HTTPS: it checks each App JWT's RS256
// signature with the App's public key (and its iss, iat and exp), hands out installation tokens
// that live `tokenTtlMs` (seconds, so a test sees many refreshes), and answers API calls only
// with a token it issued and that has not expired: any other is a 401 and counted, so a test can
// assert that no request left with an expired token. Git smart HTTP is served by `git
// http-backend` from `repoRoot`, with the token as the basic-auth password (x-access-token).
import { spawn } from 'node:child_process';
import { randomBytes, verify, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface FakeGithubOptions {
  appId: string;
  installationId: string;
  publicKey: KeyObject;
  tokenTtlMs: number;
  cert: string;
  key: string;
  /** Bare repositories under it are served by git http-backend. */
  repoRoot?: string;
}

export interface FakeGithubStats {
  tokensIssued: number;
  /** Access token requests refused: bad JWT (signature, iss, times) or missing GitHub headers. */
  jwtRefused: number;
  apiOk: number;
  /** Calls with a token this GitHub issued that had expired: must stay 0. */
  expiredUses: number;
  /** Calls with no credential or one it never issued. */
  badAuth: number;
  gitRequests: number;
}

export interface FakeGithub {
  /** `127.0.0.1:port`: GITHUB, GITHUB_API, GITHUB_RAW and GITHUB_GRAPHQL at once. */
  readonly host: string;
  readonly stats: FakeGithubStats;
  /** Every Authorization / credential seen (tests check none of them is in a log). */
  readonly credentials: Set<string>;
  /** `down`: the token endpoint answers 503; `refuse`: 401 as for a wrong App. */
  tokenEndpoint: 'ok' | 'down' | 'refuse';
  close(): Promise<void>;
}

/** The JWT's claims when its RS256 signature verifies with `key`, else why not. */
export function checkAppJwt(jwt: string, key: KeyObject, appId: string, nowS: number): { ok: true } | { ok: false; why: string } {
  const parts = jwt.split('.');
  if (parts.length !== 3) return { ok: false, why: 'not a JWT' };
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString()) as { alg?: string };
  if (header.alg !== 'RS256') return { ok: false, why: `alg ${header.alg}` };
  if (!verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), key, Buffer.from(parts[2], 'base64url'))) return { ok: false, why: 'bad signature' };
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString()) as { iat?: number; exp?: number; iss?: unknown };
  if (String(claims.iss) !== appId) return { ok: false, why: `iss ${String(claims.iss)}` };
  if (typeof claims.iat !== 'number' || typeof claims.exp !== 'number') return { ok: false, why: 'no iat/exp' };
  if (claims.iat > nowS + 1) return { ok: false, why: 'iat in the future' };
  if (claims.exp <= nowS) return { ok: false, why: 'expired JWT' };
  if (claims.exp - claims.iat > 660) return { ok: false, why: 'exp too far ahead (GitHub allows 10 minutes)' };
  return { ok: true };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export async function startFakeGithub(o: FakeGithubOptions): Promise<FakeGithub> {
  const stats: FakeGithubStats = { tokensIssued: 0, jwtRefused: 0, apiOk: 0, expiredUses: 0, badAuth: 0, gitRequests: 0 };
  const tokens = new Map<string, number>();
  const credentials = new Set<string>();
  const state = { tokenEndpoint: 'ok' as FakeGithub['tokenEndpoint'] };

  /** 'ok', 'expired' or 'bad' for a token, counted. */
  const judge = (token: string | undefined): 'ok' | 'expired' | 'bad' => {
    const expiresAt = token ? tokens.get(token) : undefined;
    if (expiresAt === undefined) {
      stats.badAuth++;
      return 'bad';
    }
    if (expiresAt <= Date.now()) {
      stats.expiredUses++;
      return 'expired';
    }
    return 'ok';
  };

  const issue = (req: IncomingMessage, res: ServerResponse) => {
    const auth = req.headers.authorization ?? '';
    credentials.add(auth.replace(/^Bearer /, ''));
    if (state.tokenEndpoint === 'down') return json(res, 503, { message: 'Service Unavailable' });
    if (state.tokenEndpoint === 'refuse') return json(res, 401, { message: 'A JSON web token could not be decoded' });
    if (req.headers.accept !== 'application/vnd.github+json' || req.headers['x-github-api-version'] !== '2022-11-28') {
      stats.jwtRefused++;
      return json(res, 415, { message: 'missing GitHub media type or API version' });
    }
    const verdict = checkAppJwt(auth.replace(/^Bearer /, ''), o.publicKey, o.appId, Math.floor(Date.now() / 1000));
    if (!verdict.ok) {
      stats.jwtRefused++;
      return json(res, 401, { message: `JWT refused: ${verdict.why}` });
    }
    const token = `ghs_${randomBytes(18).toString('base64url')}`;
    const expiresAt = Date.now() + o.tokenTtlMs;
    tokens.set(token, expiresAt);
    credentials.add(token);
    stats.tokensIssued++;
    json(res, 201, { token, expires_at: new Date(expiresAt).toISOString(), permissions: { contents: 'read' }, repository_selection: 'all' });
  };

  const git = (req: IncomingMessage, res: ServerResponse, path: string, query: string) => {
    stats.gitRequests++;
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const [user, pass] = basic ? Buffer.from(basic, 'base64').toString().split(':') : [];
    if (pass) credentials.add(pass);
    if (user !== 'x-access-token' || judge(pass) !== 'ok') {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="GitHub"' });
      return res.end();
    }
    const cgi = spawn('git', ['http-backend'], {
      env: { GIT_PROJECT_ROOT: o.repoRoot, GIT_HTTP_EXPORT_ALL: '1', PATH_INFO: path, QUERY_STRING: query, REQUEST_METHOD: req.method, CONTENT_TYPE: req.headers['content-type'] ?? '', PATH: process.env.PATH },
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headDone = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headDone) return void res.write(chunk);
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      headDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString().split('\r\n')) {
        const [k, ...v] = line.split(':');
        if (k.toLowerCase() === 'status') status = Number.parseInt(v.join(':').trim(), 10);
        else headers[k.toLowerCase()] = v.join(':').trim();
      }
      res.writeHead(status, headers);
      res.write(head.subarray(end + 4));
    });
    cgi.on('close', () => (headDone ? res.end() : (res.writeHead(500), res.end())));
  };

  const server = createServer({ cert: o.cert, key: o.key }, (req, res) => {
    const [path, query = ''] = (req.url ?? '/').split('?');
    if (req.method === 'POST' && path === `/app/installations/${o.installationId}/access_tokens`) return void req.resume().on('end', () => issue(req, res));
    if (/\/(info\/refs|git-upload-pack)$/.test(path) && o.repoRoot) return git(req, res, path, query);
    req.resume();
    const auth = req.headers.authorization ?? '';
    if (path === `/app/installations/${o.installationId}`) {
      const ok = checkAppJwt(auth.replace(/^Bearer /, ''), o.publicKey, o.appId, Math.floor(Date.now() / 1000)).ok;
      return json(res, ok ? 200 : 401, ok ? { id: Number(o.installationId), app_id: Number(o.appId) } : { message: 'Bad credentials' });
    }
    const token = /^Bearer (.+)$/.exec(auth)?.[1];
    if (token) credentials.add(token);
    const verdict = judge(token);
    if (verdict !== 'ok') return json(res, 401, { message: verdict === 'expired' ? 'token expired' : 'Bad credentials' });
    stats.apiOk++;
    if (path === '/installation/repositories') return json(res, 200, { total_count: 1, repositories: [{ full_name: 'org/repo' }] });
    json(res, 200, { path, method: req.method });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    stats,
    credentials,
    get tokenEndpoint() {
      return state.tokenEndpoint;
    },
    set tokenEndpoint(v) {
      state.tokenEndpoint = v;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
