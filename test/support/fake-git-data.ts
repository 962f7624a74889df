// A fake GitHub Git Data API over HTTPS for the commit signing tests. `POST .../git/commits`
// does what GitHub does with the payload: it writes the commit object, with the signature as its
// gpgsig header, into a real bare repository (`git hash-object -w`), so a test can ask git itself
// (`git verify-commit`) whether the signature covers the object GitHub stored. Every request is
// recorded, so a test can also show that a refused one never arrived.
import { execFile } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface GitDataRequest {
  method: string;
  path: string;
  authorization?: string;
  body: string;
}

export interface FakeGitData {
  /** `127.0.0.1:port`, for GITHUB_API. */
  readonly host: string;
  readonly requests: GitDataRequest[];
  /** The ids of the commits written, in order. */
  readonly commits: string[];
  close(): Promise<void>;
}

/** `+0200` for a date string's offset (`Z` is `+0000`), as GitHub keeps the one it is given. */
function offsetOf(date: string): string {
  const m = /([+-])(\d{2}):?(\d{2})$/.exec(date);
  return m ? `${m[1]}${m[2]}${m[3]}` : '+0000';
}

interface Who {
  name: string;
  email: string;
  date: string;
}

/** The commit object text with `signature` as the gpgsig header (continuation lines start with a space). */
export function githubCommitObject(p: { tree: string; parents?: string[]; author: Who; committer: Who; message: string; signature?: string }): string {
  const who = (w: Who) => `${w.name} <${w.email}> ${Math.floor(Date.parse(w.date) / 1000)} ${offsetOf(w.date)}`;
  const sig = p.signature ? `gpgsig ${p.signature.split('\n').join('\n ')}\n` : '';
  return `tree ${p.tree}\n${(p.parents ?? []).map((x) => `parent ${x}\n`).join('')}author ${who(p.author)}\ncommitter ${who(p.committer)}\n${sig}\n${p.message}`;
}

function writeObject(gitDir: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('git', ['--git-dir', gitDir, 'hash-object', '-w', '-t', 'commit', '--stdin'], (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout.trim())));
    child.stdin!.end(text);
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export async function startFakeGitData(o: { cert: string; key: string; gitDir: string }): Promise<FakeGitData> {
  const requests: GitDataRequest[] = [];
  const commits: string[] = [];
  const handle = async (req: IncomingMessage, res: ServerResponse, body: string) => {
    const path = (req.url ?? '/').split('?')[0];
    requests.push({ method: req.method ?? '', path, authorization: req.headers.authorization, body });
    if (req.method === 'POST' && /^\/repos\/[^/]+\/[^/]+\/git\/commits$/.test(path)) {
      const payload = JSON.parse(body) as Parameters<typeof githubCommitObject>[0];
      try {
        const sha = await writeObject(o.gitDir, githubCommitObject(payload));
        commits.push(sha);
        return json(res, 201, { sha, tree: { sha: payload.tree }, message: payload.message, verification: { verified: false, reason: 'checked by the test' } });
      } catch (err) {
        return json(res, 422, { message: (err as Error).message });
      }
    }
    if (req.method === 'POST' && /\/git\/trees$/.test(path)) return json(res, 201, { sha: 'd'.repeat(40), tree: [] });
    json(res, 200, { path, method: req.method });
  };
  const server = createServer({ cert: o.cert, key: o.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    commits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
