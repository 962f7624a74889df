// Where the deployment's connections come from (src/client/universal/connections-source.ts):
// Snyk's JSON:API list parsed as Snyk's client maps it (compared with the real
// retrieveConnectionsForDeployment), the remote list against the fake Snyk API (headers, the
// 401 retry, 404 fatal), and SKIP_REMOTE_CONFIG's CONNECTIONS block of a local file.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEgress, type Egress } from '../../src/http/egress.js';
import { ConnectionsError, fileConnections, parseConnectionsList, remoteConnections, type DeploymentConnection, type RemoteSourceOptions } from '../../src/client/universal/connections-source.js';
import { OAuthToken, OAuthTokenError } from '../../src/client/universal/oauth-token.js';
import type { PlatformAuth } from '../../src/client/platform-auth.js';
import { startFakeSnykApi, type FakeConnection, type FakeSnykApi } from '../support/fake-snyk-api.js';
import { freePort } from '../support/ports.js';
import { SNYK_BROKER_DATA_DIR, SNYK_BROKER_DIR } from '../support/paths.js';

const VERSION = '2024-02-08~experimental';
const GH = randomUUID();
const GL = randomUUID();
const FAKE_CONNECTIONS: FakeConnection[] = [
  {
    name: 'my github',
    type: 'github',
    identifier: GH,
    id: 'c-github',
    required: { GITHUB_TOKEN: '${MY_GITHUB_TOKEN}', broker_client_url: 'https://broker.corp.example:8000' },
    default: { GITHUB_API: 'ghe.example/api/v3', github_token: 'overridden by required' },
    contexts: [
      { id: 'ctx-1', values: { GITHUB_TOKEN: '${OTHER_GH_TOKEN}' } },
      { id: 'ctx-2', values: { github_api: 'other.example/api/v3' } },
    ],
  },
  { name: 'my gitlab', type: 'gitlab', identifier: GL, id: 'c-gitlab', required: { gitlab_token: '${GL}', gitlab: 'gitlab.example' } },
  { name: 'unused', type: 'jira', identifier: null, id: 'c-unused', required: { jira_pat: '${JIRA}', jira_hostname: 'jira.example' } },
];

/** One JSON:API item as Snyk's API returns it (universal-broker.md §2.2). */
function item(over: { id?: unknown; name?: unknown; identifier?: unknown; configuration?: unknown; relationships?: unknown } = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: 'id' in over ? over.id : 'conn-1',
    type: 'broker_connection',
    attributes: {
      name: 'name' in over ? over.name : 'conn one',
      deployment_id: 'dep',
      identifier: 'identifier' in over ? over.identifier : 'tok-1',
      configuration: 'configuration' in over ? over.configuration : { type: 'github', default: {}, required: { github_token: 'x' } },
    },
  };
  if ('relationships' in over) out.relationships = over.relationships;
  return out;
}

/** Ours in the shape Snyk's client writes into CONNECTIONS. */
function asSnykWrites(list: DeploymentConnection[]): Record<string, unknown> {
  return Object.fromEntries(list.map((c) => [c.name, { ...c.values, type: c.type, identifier: c.identifier, id: c.id, friendlyName: c.name, contexts: c.contexts }]));
}

describe('parseConnectionsList', () => {
  it('upper-cases keys, required over default, type/identifier/id kept, contexts from the relationships array', () => {
    const [c, ...rest] = parseConnectionsList({
      data: [
        item({
          configuration: { type: 'github', default: { github_api: 'default.example', Broker_Client_Url: 'https://d' }, required: { GITHUB_API: 'required.example', github_token: '${T}' } },
          relationships: [
            { id: 'ctx-a', type: 'broker_context', attributes: { context: { github_token: '${T2}', Mixed_Case: 'v' } } },
            { id: 'ctx-b', type: 'broker_context', attributes: { context: {} } },
          ],
        }),
      ],
    });
    assert.equal(rest.length, 0);
    assert.deepEqual(c, {
      name: 'conn one',
      id: 'conn-1',
      type: 'github',
      identifier: 'tok-1',
      values: { GITHUB_API: 'required.example', BROKER_CLIENT_URL: 'https://d', GITHUB_TOKEN: '${T}' },
      contexts: { 'ctx-a': { GITHUB_TOKEN: '${T2}', MIXED_CASE: 'v' }, 'ctx-b': {} },
    });
  });

  it('relationships missing, an object (JSON:API style), or items without an id or a context: no contexts, no crash', () => {
    const list = parseConnectionsList({
      data: [
        item({ name: 'a' }),
        item({ name: 'b', relationships: { contexts: { data: [{ id: 'x', type: 'broker_context' }] } } }),
        item({ name: 'c', relationships: [{ type: 'broker_context', attributes: { context: { a: 'b' } } }, null, { id: 'ctx-no-attrs' }] }),
        item({ name: 'd', relationships: null }),
      ],
    });
    assert.deepEqual(
      list.map((c) => [c.name, c.contexts]),
      [
        ['a', {}],
        ['b', {}],
        ['c', { 'ctx-no-attrs': {} }],
        ['d', {}],
      ],
    );
  });

  it('identifier null, empty or absent: null (not in use)', () => {
    const list = parseConnectionsList({ data: [item({ name: 'n', identifier: null }), item({ name: 'e', identifier: '' }), item({ name: 'u', identifier: undefined }), item({ name: 'num', identifier: 42 })] });
    assert.deepEqual(
      list.map((c) => c.identifier),
      [null, null, null, null],
    );
  });

  it('items without a name or a configuration type are skipped; the rest are kept in order', () => {
    const list = parseConnectionsList({
      data: [
        null,
        'junk',
        item({ name: undefined }),
        item({ name: 7 }),
        item({ name: 'no configuration', configuration: undefined }),
        item({ name: 'no type', configuration: { default: {}, required: {} } }),
        item({ name: 'kept 1' }),
        item({ name: 'kept 2', configuration: { type: 'gitlab' } }),
      ],
    });
    assert.deepEqual(
      list.map((c) => [c.name, c.type]),
      [
        ['kept 1', 'github'],
        ['kept 2', 'gitlab'],
      ],
    );
    assert.deepEqual(list[1]!.values, {}, 'no default/required blocks: no values');
  });

  it('numbers and booleans become strings; null, objects and arrays are dropped', () => {
    const [c] = parseConnectionsList({ data: [item({ configuration: { type: 'nexus', default: { port: 8081, insecure: false, nothing: null, nested: { a: 1 }, list: ['a'] }, required: { base_nexus_url: 'https://n' } } })] });
    assert.deepEqual(c!.values, { PORT: '8081', INSECURE: 'false', BASE_NEXUS_URL: 'https://n' });
  });

  it('a missing id falls back to the name', () => {
    assert.equal(parseConnectionsList({ data: [item({ id: undefined })] })[0]!.id, 'conn one');
  });

  it('an answer without a data array is a (non-fatal) ConnectionsError', () => {
    for (const body of [undefined, null, {}, { data: {} }, { data: 'x' }, []]) {
      assert.throws(
        () => parseConnectionsList(body),
        (e: unknown) => e instanceof ConnectionsError && !e.fatal && /no data array/.test(e.message),
        JSON.stringify(body),
      );
    }
    assert.deepEqual(parseConnectionsList({ data: [] }), []);
  });
});

interface RealOAuth {
  initOAuthClient(o: { clientId: string; clientSecret: string; apiHostname: string }): void;
}
interface RealRemoteConfig {
  retrieveConnectionsForDeployment(clientOpts: { config: Record<string, unknown> }, universalFilePath: string): Promise<void>;
}

describe('remoteConnections against the fake Snyk API', () => {
  let api: FakeSnykApi;
  let egress: Egress;
  let dir: string;
  const clientId = randomUUID();

  before(async () => {
    api = await startFakeSnykApi({ connections: FAKE_CONNECTIONS });
    egress = await createEgress();
    dir = await mkdtemp(join(tmpdir(), 'ub-connections-'));
  });
  after(async () => {
    await api?.close();
    await egress?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const source = (auth: PlatformAuth, over: Partial<RemoteSourceOptions> = {}) =>
    remoteConnections({ egress, auth, apiBaseUrl: api.url, deploymentId: api.deploymentId, apiVersion: VERSION, clientId, wireVersion: '4.999.0', ...over });
  const oauth = () => new OAuthToken({ egress, apiBaseUrl: api.url, clientId: api.clientId, clientSecret: api.clientSecret });
  const listCalls = () => api.calls.filter((c) => c.path === `/hidden/brokers/deployments/${api.deploymentId}/connections`);
  const tokenCalls = () => api.calls.filter((c) => c.path === '/oauth2/token').length;

  it("sends the bearer, Snyk's headers and ?version=, and parses the list", async () => {
    const auth = oauth();
    const list = await source(auth).list();
    const call = listCalls().at(-1)!;
    assert.equal(call.method, 'GET');
    assert.equal(call.headers.authorization, await auth.authorization());
    assert.match(call.headers.authorization!, /^bearer /);
    assert.equal(call.headers['x-broker-client-id'], clientId);
    assert.equal(call.headers['x-broker-client-version'], '4.999.0');
    assert.equal(call.headers['content-type'], 'application/vnd.api+json');
    assert.equal(call.headers['user-agent'], 'Snyk Broker Client 4.999.0');
    assert.match(String(call.headers['snyk-request-id']), /^[0-9a-f-]{36}$/);
    assert.equal(call.query.get('version'), VERSION);
    assert.deepEqual(
      list.map((c) => [c.name, c.type, c.identifier, c.id]),
      [
        ['my github', 'github', GH, 'c-github'],
        ['my gitlab', 'gitlab', GL, 'c-gitlab'],
        ['unused', 'jira', null, 'c-unused'],
      ],
    );
    assert.deepEqual(list[0]!.values, { GITHUB_API: 'ghe.example/api/v3', GITHUB_TOKEN: '${MY_GITHUB_TOKEN}', BROKER_CLIENT_URL: 'https://broker.corp.example:8000' });
    assert.deepEqual(list[0]!.contexts, { 'ctx-1': { GITHUB_TOKEN: '${OTHER_GH_TOKEN}' }, 'ctx-2': { GITHUB_API: 'other.example/api/v3' } });
    assert.match(source(auth).description, new RegExp(`deployment ${api.deploymentId}$`));
  });

  it('maps the list exactly as the real retrieveConnectionsForDeployment writes CONNECTIONS', async () => {
    process.env.LOG_LEVEL ??= 'fatal';
    const load = createRequire(join(SNYK_BROKER_DIR, 'dist', 'lib', 'index.js'));
    const realOAuth = load('./hybrid-sdk/client/auth/oauth.js') as RealOAuth;
    const remote = load('./hybrid-sdk/client/config/remoteConfig.js') as RealRemoteConfig;
    realOAuth.initOAuthClient({ clientId: api.clientId, clientSecret: api.clientSecret, apiHostname: api.url });
    const file = join(dir, 'config.universal.json');
    await writeFile(file, '{}');
    await remote.retrieveConnectionsForDeployment({ config: { API_BASE_URL: api.url, deploymentId: api.deploymentId, apiVersion: VERSION, brokerClientId: clientId } }, file);
    const written = (JSON.parse(await readFile(file, 'utf8')) as { CONNECTIONS: Record<string, unknown> }).CONNECTIONS;
    const ours = await source(oauth()).list();
    assert.deepEqual(asSnykWrites(ours), written);
    // Snyk's real client sends the same request line and identifying headers as ours.
    const [theirs, mine] = listCalls().slice(-2);
    assert.equal(theirs!.query.toString(), mine!.query.toString());
    for (const h of ['content-type', 'x-broker-client-id']) assert.equal(mine!.headers[h], theirs!.headers[h], h);
  });

  it('a 401 (tokens revoked) drops the token: exactly one new token and one retry', async () => {
    const auth = oauth();
    await source(auth).list();
    const tokens = tokenCalls();
    const lists = listCalls().length;
    api.revokeAllTokens();
    const list = await source(auth).list();
    assert.equal(list.length, 3);
    assert.equal(tokenCalls() - tokens, 1, 'one new token');
    const calls = listCalls().slice(lists);
    assert.equal(calls.length, 2, 'the refused call and its retry');
    assert.notEqual(calls[0]!.headers.authorization, calls[1]!.headers.authorization);
    await source(auth).list();
    assert.equal(tokenCalls() - tokens, 1, 'the new token is reused afterwards');
  });

  it('a second 401 is not retried again: a non-fatal error with the gateway reason', async () => {
    let invalidated = 0;
    const stuck: PlatformAuth = { authorization: () => Promise.resolve('bearer not.a.jwt'), invalidate: () => void invalidated++ };
    const lists = listCalls().length;
    const err = await source(stuck).list().catch((e: unknown) => e);
    assert.ok(err instanceof ConnectionsError);
    assert.equal(err.fatal, false);
    assert.match(err.message, /answered 401 to the connections list: invalid_token: bad signature/);
    assert.equal(invalidated, 1);
    assert.equal(listCalls().length - lists, 2);
  });

  it('an unknown deployment (404) is fatal, naming DEPLOYMENT_ID', async () => {
    const other = randomUUID();
    const err = await source(oauth(), { deploymentId: other }).list().catch((e: unknown) => e);
    assert.ok(err instanceof ConnectionsError);
    assert.equal(err.fatal, true);
    assert.ok(err.message.includes(other));
    assert.match(err.message, /DEPLOYMENT_ID/);
  });

  it('refused client credentials come out as the OAuthTokenError (refused), before any list call', async () => {
    const lists = listCalls().length;
    const bad = new OAuthToken({ egress, apiBaseUrl: api.url, clientId: api.clientId, clientSecret: 'not-the-secret' });
    await assert.rejects(source(bad).list(), (e: unknown) => e instanceof OAuthTokenError && e.refused);
    assert.equal(listCalls().length, lists);
  });

  it('Snyk unreachable, a 5xx or an unreadable 200: non-fatal errors', async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const ok: PlatformAuth = { authorization: () => Promise.resolve('bearer x'), invalidate: () => undefined };
    await assert.rejects(source(ok, { apiBaseUrl: down }).list(), (e: unknown) => e instanceof ConnectionsError && !e.fatal && /unreachable/.test(e.message));
    const answers: Array<[number, string, RegExp]> = [
      [503, JSON.stringify({ error: 'temporarily_unavailable', error_description: 'maintenance' }), /answered 503 to the connections list: temporarily_unavailable: maintenance/],
      [500, 'oops', /answered 500 to the connections list$/],
      [200, 'not json', /no data array/],
    ];
    let i = 0;
    const server = createServer((req, res) => {
      req.resume();
      const [status, body] = answers[i++]!;
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      for (const [status, , message] of answers) {
        const err = await source(ok, { apiBaseUrl: url }).list().catch((e: unknown) => e);
        assert.ok(err instanceof ConnectionsError, String(status));
        assert.equal(err.fatal, false, String(status));
        assert.match(err.message, message);
      }
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('fileConnections (SKIP_REMOTE_CONFIG)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ub-file-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("reads Snyk's config.universaltest.json: identifiers and values stay ${ENV} references", { skip: SNYK_BROKER_DATA_DIR ? false : 'no snyk-broker-data' }, async () => {
    const file = join(dir, 'config.universaltest.json');
    await copyFile(join(SNYK_BROKER_DATA_DIR!, 'config.universaltest.json'), file);
    const source = fileConnections(file);
    assert.equal(source.description, file);
    const list = await source.list();
    assert.deepEqual(list, [
      { name: 'my github connection', id: '1', type: 'github', identifier: '${BROKER_TOKEN_1}', values: { GITHUB_TOKEN: '${GITHUB_TOKEN}' }, contexts: {} },
      { name: 'my gitlab connection', id: '2', type: 'gitlab', identifier: '${BROKER_TOKEN_2}', values: { GITLAB_TOKEN: '${GITLAB_TOKEN}', GITLAB: 'gitlab.dev.snyk.io' }, contexts: {} },
      {
        name: 'my azure connection',
        id: '3',
        type: 'azure-repos',
        identifier: '${BROKER_TOKEN_3}',
        values: { AZURE_REPOS_TOKEN: '${AZURE_REPOS_TOKEN}', AZURE_REPOS_ORG: '${AZURE_REPOS_ORG}', AZURE_REPOS_HOST: '${AZURE_REPOS_HOST}' },
        contexts: {},
      },
      { name: 'my jira pat', id: '4', type: 'jira', identifier: '${BROKER_TOKEN_4}', values: { JIRA_PAT: '${JIRA_PAT}', JIRA_HOSTNAME: '${JIRA_HOSTNAME}' }, contexts: {} },
    ]);
  });

  it('reads the CONNECTIONS block Snyk writes itself: friendlyName is not a value, contexts are kept, keys upper-cased', async () => {
    const file = join(dir, 'config.universal.json');
    await writeFile(
      file,
      JSON.stringify({
        BROKER_CLIENT_CONFIGURATION: { common: { oauth: { clientId: '${CLIENT_ID}', clientSecret: '${CLIENT_SECRET}' } } },
        CONNECTIONS: {
          'corp gitlab': { GITLAB_TOKEN: '${GL}', gitlab: 'gitlab.example', type: 'gitlab', identifier: 'tok-gl', id: 'c-1', friendlyName: 'corp gitlab', contexts: { 'ctx-1': { gitlab_token: '${GL2}' } } },
          unused: { type: 'github', identifier: null, GITHUB_TOKEN: 'x' },
        },
      }),
    );
    assert.deepEqual(await fileConnections(file).list(), [
      { name: 'corp gitlab', id: 'c-1', type: 'gitlab', identifier: 'tok-gl', values: { GITLAB_TOKEN: '${GL}', GITLAB: 'gitlab.example' }, contexts: { 'ctx-1': { GITLAB_TOKEN: '${GL2}' } } },
      { name: 'unused', id: 'unused', type: 'github', identifier: null, values: { GITHUB_TOKEN: 'x' }, contexts: {} },
    ]);
  });

  it('is read again on every list() (a sync sees edits)', async () => {
    const file = join(dir, 'config.edit.json');
    await writeFile(file, JSON.stringify({ CONNECTIONS: { a: { type: 'github', identifier: 't1' } } }));
    const source = fileConnections(file);
    assert.equal((await source.list())[0]!.identifier, 't1');
    await writeFile(file, JSON.stringify({ CONNECTIONS: { a: { type: 'github', identifier: 't2' }, b: { type: 'gitlab', identifier: 't3' } } }));
    assert.deepEqual(
      (await source.list()).map((c) => c.identifier),
      ['t2', 't3'],
    );
  });

  it('a missing file, bad JSON, no CONNECTIONS object, or a connection without a type: fatal, naming the file', async () => {
    const cases: Array<[string, string | undefined, RegExp]> = [
      ['missing.json', undefined, /cannot read the connections file/],
      ['bad.json', '{ not json', /has no CONNECTIONS object/],
      ['none.json', JSON.stringify({ BROKER_CLIENT_CONFIGURATION: {} }), /has no CONNECTIONS object/],
      ['null.json', JSON.stringify({ CONNECTIONS: null }), /has no CONNECTIONS object/],
      ['string.json', JSON.stringify({ CONNECTIONS: 'x' }), /has no CONNECTIONS object/],
      ['notype.json', JSON.stringify({ CONNECTIONS: { 'my conn': { identifier: 'x' } } }), /connection "my conn" .* has no type/],
      ['nullconn.json', JSON.stringify({ CONNECTIONS: { 'my conn': null } }), /connection "my conn" .* has no type/],
    ];
    for (const [name, content, message] of cases) {
      const file = join(dir, name);
      if (content !== undefined) await writeFile(file, content);
      const err = await fileConnections(file).list().catch((e: unknown) => e);
      assert.ok(err instanceof ConnectionsError, name);
      assert.equal(err.fatal, true, name);
      assert.match(err.message, /^SKIP_REMOTE_CONFIG: /);
      assert.match(err.message, message);
      assert.ok(err.message.includes(file), name);
    }
  });
});
