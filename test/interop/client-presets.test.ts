// Drop-in for Snyk's per-SCM images: our client started from a preset (BROKER_SCM_TYPE) with only
// the variables Snyk's docs ask for relays an allowed request of the SCM's real API shape to a
// local TLS origin (trusted through CA_CERT) with the credential the template prescribes, and
// refuses one outside the rules, through the real snyk-broker server and through ours.
// github-com, gitlab, bitbucket-server and azure-repos (Basic base64("PAT:token")).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { request } from 'undici';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { startSnykBroker } from '../support/snyk-broker.js';
import { waitFor } from '../support/wait.js';
import { writeAcceptFile } from '../support/client-harness.js';
import { makeTestPki } from '../support/tls.js';

interface Seen {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

const group = new ProcessGroup();
const seen: Seen[] = [];
let origin: Server;
let originHost: string;
const servers: Record<'snyk' | 'ours', { port: number; proc?: RunningProcess }> = { snyk: { port: 0 }, ours: { port: 0 } };

const GITHUB_TOKEN = `ghp_${randomUUID().replace(/-/g, '')}`;
const GITLAB_TOKEN = `glpat-${randomUUID()}`;
const BB_USER = 'snyk-bot';
const BB_PASS = `bb-pass-${randomUUID()}`;
const AZURE_TOKEN = `azpat${randomUUID().replace(/-/g, '')}`;

type Scm = 'github-com' | 'gitlab' | 'bitbucket-server' | 'azure-repos';
/** Snyk's documented variables per type (the origin host is the local TLS origin). */
const scmEnv = (host: string): Record<Scm, Record<string, string>> => ({
  'github-com': { GITHUB_TOKEN, GITHUB_API: host },
  gitlab: { GITLAB_TOKEN, GITLAB: host },
  'bitbucket-server': { BITBUCKET_USERNAME: BB_USER, BITBUCKET_PASSWORD: BB_PASS, BITBUCKET: host },
  'azure-repos': { AZURE_REPOS_TOKEN: AZURE_TOKEN, AZURE_REPOS_ORG: 'acme-org', AZURE_REPOS_HOST: host },
});
const SCMS: Scm[] = ['github-com', 'gitlab', 'bitbucket-server', 'azure-repos'];
const tokens = new Map<string, string>();
const clients = new Map<string, RunningProcess>();
const key = (server: string, scm: string) => `${server}/${scm}`;

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

before(async () => {
  const pki = await makeTestPki();
  origin = createServer({ cert: pki.cert, key: pki.key }, (req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, url: req.url }));
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  originHost = `127.0.0.1:${(origin.address() as { port: number }).port}`;

  const serverAccept = await writeAcceptFile({ public: [{ method: 'any', path: '/*' }], private: [{ method: 'any', path: '/*', origin: 'http://127.0.0.1:9' }] });
  servers.snyk.port = await freePort();
  servers.ours.port = await freePort();
  const [snyk] = await Promise.all([
    startSnykBroker(group, 'snyk-server', 'server', { PORT: String(servers.snyk.port), ACCEPT: serverAccept }),
    (servers.ours.proc = group.broker('our-server', 'server', { PORT: String(servers.ours.port), ACCEPT: serverAccept })),
  ]);
  servers.snyk.proc = snyk;

  const env = scmEnv(originHost);
  for (const server of ['snyk', 'ours'] as const) {
    for (const scm of SCMS) {
      const token = randomUUID();
      tokens.set(key(server, scm), token);
      // Only Snyk's variables (plus where the server and the CA are, as any test deployment needs).
      clients.set(
        key(server, scm),
        group.broker(`client-${server}-${scm}`, 'client', {
          BROKER_SCM_TYPE: scm,
          BROKER_TOKEN: token,
          BROKER_SERVER_URL: `http://127.0.0.1:${servers[server].port}`,
          CA_CERT: pki.caFile,
          PORT: String(await freePort()),
          ...env[scm],
        }),
      );
    }
  }
  // Everything starts in parallel; wait for each tunnel to carry a request.
  await Promise.all(
    [...tokens].map(([k, token]) => {
      const port = servers[k.split('/')[0] as 'snyk' | 'ours'].port;
      return waitFor(`${k} relays`, async () => (await get(`http://127.0.0.1:${port}/broker/${token}/no-such-rule`).catch(() => ({ status: 0 }))).status === 401, { timeoutMs: 90_000, intervalMs: 250 });
    }),
  );
});

after(async () => {
  try {
    const out = group.allOutput();
    for (const secret of [GITHUB_TOKEN, GITLAB_TOKEN, BB_PASS, AZURE_TOKEN, ...tokens.values()]) {
      assert.ok(!out.includes(secret), `a credential appears in process output`);
    }
  } finally {
    await group.stopAll();
    await new Promise((resolve) => origin?.close(resolve));
  }
});

/** Sends a platform request through `server` to the `scm` client and returns what the origin saw. */
async function relay(server: 'snyk' | 'ours', scm: Scm, path: string, headers: Record<string, string> = {}) {
  const marker = randomUUID();
  const sep = path.includes('?') ? '&' : '?';
  const res = await get(`http://127.0.0.1:${servers[server].port}/broker/${tokens.get(key(server, scm))}${path}${sep}m=${marker}`, headers);
  return { res, atOrigin: seen.find((s) => s.url.includes(marker)) };
}

for (const server of ['snyk', 'ours'] as const) {
  test(`github-com preset through ${server === 'snyk' ? "snyk-broker's server" : 'our server'}: token credential from the origin, refusal outside the rules`, async () => {
    const { res, atOrigin } = await relay(server, 'github-com', '/repos/acme/widgets');
    assert.equal(res.status, 200, res.text);
    assert.ok(atOrigin?.url.startsWith('/repos/acme/widgets?'), atOrigin?.url);
    assert.equal(atOrigin!.headers.authorization, `token ${GITHUB_TOKEN}`);
    // (Two segments would match the git rule `/:user/:repo`.)
    const refused = await relay(server, 'github-com', '/admin/users/all');
    assert.equal(refused.res.status, 401);
    assert.equal(refused.atOrigin, undefined);
  });

  test(`gitlab preset through ${server === 'snyk' ? "snyk-broker's server" : 'our server'}: private-token substituted from GITLAB_TOKEN`, async () => {
    const { res, atOrigin } = await relay(server, 'gitlab', '/api/v4/projects', { 'private-token': '${GITLAB_TOKEN}', 'x-broker-var-sub': 'private-token' });
    assert.equal(res.status, 200, res.text);
    assert.ok(atOrigin?.url.startsWith('/api/v4/projects?'), atOrigin?.url);
    assert.equal(atOrigin!.headers['private-token'], GITLAB_TOKEN);
    // gitlab's .env sets REMOVE_X_FORWARDED_HEADERS=true.
    assert.equal(Object.keys(atOrigin!.headers).filter((h) => h.startsWith('x-forwarded-')).length, 0);
    const refused = await relay(server, 'gitlab', '/api/v4/admin/users');
    assert.equal(refused.res.status, 401);
    assert.equal(refused.atOrigin, undefined);
  });

  test(`bitbucket-server preset through ${server === 'snyk' ? "snyk-broker's server" : 'our server'}: BITBUCKET_API from the .env default, basic auth`, async () => {
    const { res, atOrigin } = await relay(server, 'bitbucket-server', '/projects');
    assert.equal(res.status, 200, res.text);
    assert.ok(atOrigin?.url.startsWith('/rest/api/1.0/projects?'), atOrigin?.url);
    assert.equal(atOrigin!.headers.authorization, `Basic ${Buffer.from(`${BB_USER}:${BB_PASS}`).toString('base64')}`);
    const refused = await relay(server, 'bitbucket-server', '/admin/users');
    assert.equal(refused.res.status, 401);
    assert.equal(refused.atOrigin, undefined);
  });

  test(`azure-repos preset through ${server === 'snyk' ? "snyk-broker's server" : 'our server'}: Basic base64("PAT:" + AZURE_REPOS_TOKEN)`, async () => {
    const { res, atOrigin } = await relay(server, 'azure-repos', '/_apis/projects');
    assert.equal(res.status, 200, res.text);
    assert.ok(atOrigin?.url.startsWith('/acme-org/_apis/projects?'), atOrigin?.url);
    assert.equal(atOrigin!.headers.authorization, `Basic ${Buffer.from(`PAT:${AZURE_TOKEN}`).toString('base64')}`);
    // A rule path written without its leading '/' in Snyk's template.
    const bare = await relay(server, 'azure-repos', '/_apis/git/repositories');
    assert.equal(bare.res.status, 200, bare.res.text);
  });
}

test('a rule whose origin is an unset variable (GIT_CLIENT_URL) answers 502 naming it; the start warned once', async () => {
  const client = clients.get(key('ours', 'github-com'))!;
  const warnings = client.output().split('\n').filter((l) => l.includes('unset variables'));
  assert.equal(warnings.length, 1, client.output().slice(-3000));
  assert.match(warnings[0]!, /GIT_CLIENT_URL \(1 rule\)/);
  const { res, atOrigin } = await relay('ours', 'github-com', '/snykgit/a/b');
  assert.equal(res.status, 502, res.text);
  assert.match(String(res.headers['x-broker-failure']), /GIT_CLIENT_URL/);
  assert.match(res.text, /GIT_CLIENT_URL/);
  assert.equal(atOrigin, undefined);
  const viaSnyk = await relay('snyk', 'github-com', '/snykgit/a/b');
  assert.equal(viaSnyk.res.status, 502, viaSnyk.res.text);
  assert.match(viaSnyk.res.text + String(viaSnyk.res.headers['x-broker-failure']), /GIT_CLIENT_URL/);
});
