import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../support/paths.js';
import { CLIENT_ENV_HELP } from '../../src/config/client-help.js';
import { SERVER_ENV_HELP } from '../../src/config/server-help.js';
import { DISPATCHER_ENV_HELP } from '../../src/config/dispatcher-help.js';

/**
 * The bad-configuration sweep: every variable that `--help` of client, server and dispatcher
 * lists is either given a bad value here (the program must exit 2 and name it on stderr) or is
 * listed as free text with the reason. The variable list is parsed from the help texts, so a new
 * variable fails `every variable in the help has a bad value or a reason` until it is classified.
 */
type Program = 'client' | 'server' | 'dispatcher';

/** A bad value for a variable; `names` is what stderr must mention (default: the variable). */
interface Bad {
  value: string | ((f: Files) => string);
  /** Other variables the case needs (e.g. HTTPS_KEY next to a bad HTTPS_CERT). */
  with?: (f: Files) => Record<string, string>;
  names?: string;
}
/** Free text: any value is valid, so there is no bad one. */
interface Untyped {
  untyped: string;
}
type Entry = Bad | Untyped;

interface Files {
  dir: string;
  accept: string;
  garbage: string;
  missing: string;
  cert: string;
  key: string;
}

const INT = { value: 'twelve' };
const NEGATIVE = { value: '-5' };
const URL_BAD = { value: 'not a url' };
const BOOL = { value: 'maybe' };
const MISSING_FILE = { value: (f: Files) => f.missing };
/** The server's mandatory-auth variables are read only with the mode on (and its gateway set). */
const MANDATORY_AUTH = () => ({ BROKER_SERVER_MANDATORY_AUTH_ENABLED: 'true', GATEWAY_HOSTNAME: 'http://127.0.0.1:9' });

/** The client's Universal Broker variables are read only in that mode (the API is never reached: config fails first). */
const UNIVERSAL = () => ({ UNIVERSAL_BROKER_ENABLED: 'true', DEPLOYMENT_ID: '9f3c2a10-5b7e-4c1d-8a2f-0e6d4b1c7a55', CLIENT_ID: 'client-id', CLIENT_SECRET: 'client-secret', API_BASE_URL: 'http://127.0.0.1:9' });

/** Shared by the three programs where the variable means the same. */
const COMMON: Record<string, Entry> = {
  PORT: { value: '70000' },
  LOG_LEVEL: { value: 'loud' },
  BROKER_NODE_IDLE_GC: { value: 'sometimes' },
  BROKER_NODE_YOUNG_GENERATION: { value: 'defualt' },
  HTTP_PROXY: { value: 'proxy host:3128' },
  HTTPS_PROXY: { value: '::not-a-proxy::' },
  NO_PROXY: { untyped: 'a free list of host patterns' },
  NODE_EXTRA_CA_CERTS: { value: (f) => f.garbage },
  SOCKET_PING_INTERVAL: INT,
  SOCKET_MAX_RESPONSE_LENGTH: { value: '12' },
  HTTPS_CERT: { value: (f) => f.missing, with: (f) => ({ HTTPS_KEY: f.key }) },
  HTTPS_KEY: { value: (f) => f.garbage, with: (f) => ({ HTTPS_CERT: f.cert }) },
  ACCEPT: MISSING_FILE,
};

/** A complete GitHub App besides the variable under test (the key: a real RSA key file). */
/** Complete commit signing besides the variable under test (the key is checked before anything else needs it). */
const SIGNING = (): Record<string, string> => ({ GIT_COMMITTER_NAME: 'Bot', GIT_COMMITTER_EMAIL: 'bot@example.com', GPG_PASSPHRASE: 'pass', GPG_PRIVATE_KEY: '-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nAAAA\n-----END PGP PRIVATE KEY BLOCK-----' });
const GITHUB_APP = (f: Files): Record<string, string> => ({ GITHUB_APP_ID: '1', GITHUB_APP_CLIENT_ID: 'Iv1.x', GITHUB_APP_INSTALLATION_ID: '2', GITHUB_APP_PRIVATE_PEM_PATH: f.key, GITHUB_API: 'api.github.com' });

const TABLE: Record<Program, Record<string, Entry>> = {
  client: {
    ...COMMON,
    BROKER_TOKEN: { value: ' ' },
    BROKER_SERVER_URL: URL_BAD,
    BROKER_CLIENT_URL: { value: 'ftp://client' },
    BROKER_SCM_TYPE: { value: 'subversion' },
    UNIVERSAL_BROKER_ENABLED: { untyped: 'any value but false/no/0 runs the Universal client (Snyk: any value at all)' },
    DEPLOYMENT_ID: { value: 'not/a deployment', with: UNIVERSAL },
    CLIENT_ID: { value: ' ', with: UNIVERSAL },
    CLIENT_SECRET: { value: ' ', with: UNIVERSAL },
    API_VERSION: { untyped: "passed as the connections list's ?version=; Snyk's API judges it" },
    AUTH_EXPIRATION_OVERRIDE: { value: 'ten minutes', with: UNIVERSAL },
    // On, with no config.universal.json in the working directory: the file it needs is named.
    SKIP_REMOTE_CONFIG: { value: 'true', with: UNIVERSAL },
    BROKER_CLIENT_SYNC_INTERVAL_MS: { value: '5', with: UNIVERSAL },
    ACCEPT_CODE: { untyped: "Snyk's switch: any value but false is on" },
    ACCEPT_GIT: { untyped: "Snyk's switch: any value but false is on" },
    ACCEPT_IAC: { untyped: 'extensions; unknown ones are skipped with a warning, as in snyk-broker' },
    ACCEPT_LARGE_MANIFESTS: { untyped: "Snyk's switch: any value but false is on" },
    ACCEPT_APPRISK: { untyped: "Snyk's switch: any value but false is on" },
    ACCEPT_ESSENTIALS: { untyped: "Snyk's switch: any value but false is on" },
    ACCEPT_CUSTOM_PR_TEMPLATES: { untyped: "Snyk's switch: any value but false is on" },
    BROKER_CLIENT_ID: { value: 'has spaces in it' },
    BROKER_HA_MODE_ENABLED: BOOL,
    API_BASE_URL: URL_BAD,
    BROKER_DISPATCHER_BASE_URL: { value: 'dispatcher:8080/x y' },
    DISPATCHER_URL_PREFIX: { value: 'hidden/broker' },
    BROKER_CLIENT_LOCATION: { untyped: 'a free label sent to the dispatcher' },
    PREFLIGHT_CHECKS_ENABLED: BOOL,
    CA_CERT: MISSING_FILE,
    NODE_TLS_REJECT_UNAUTHORIZED: { untyped: "Node's own variable: only 0 changes anything, every other value keeps verification on" },
    BROKER_CLIENT_TRANSPORT: { value: 'carrier-pigeon' },
    SOCKET_PONG_TIMEOUT: INT,
    SOCKET_CONNECT_TIMEOUT: { value: '5' },
    BROKER_CLIENT_MAX_FRAME_BYTES: INT,
    BROKER_CLIENT_POST_TIMEOUT: NEGATIVE,
    BROKER_CLIENT_WEBHOOK_BODY_LIMIT: INT,
    BROKER_CLIENT_WEBHOOK_TIMEOUT_MS: INT,
    BROKER_CLIENT_DRAIN_GRACE_MS: NEGATIVE,
    BROKER_HEALTHCHECK_PATH: { value: 'healthcheck' },
    BROKER_SYSTEMCHECK_PATH: { value: 'systemcheck' },
    BROKER_CLIENT_VALIDATION_URL: URL_BAD,
    BROKER_CLIENT_VALIDATION_METHOD: { value: 'FETCH' },
    BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER: { untyped: 'a free header value' },
    BROKER_CLIENT_VALIDATION_BASIC_AUTH: { untyped: 'a free user:password' },
    BROKER_CLIENT_VALIDATION_TIMEOUT_MS: INT,
    REMOVE_X_FORWARDED_HEADERS: BOOL,
    BROKER_CLIENT_TUNNEL_ANSWERS: BOOL,
    BROKER_CLIENT_TUNNEL_STREAMS: BOOL,
    BROKER_CLIENT_TRUST_SERVER_URL: BOOL,
    DISABLE_BODY_VARS_SUBSTITUTION: BOOL,
    DISABLE_HEADER_VARS_SUBSTITUTION: BOOL,
    BROKER_VERSION: { untyped: 'a free version label announced to the server' },
    BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER_POOL: { untyped: 'a free list of header values' },
    BROKER_CLIENT_VALIDATION_BASIC_AUTH_POOL: { untyped: 'a free list of user:password' },
    INSECURE_DOWNSTREAM: BOOL,
    RES_BODY_URL_SUB: { value: 'ftp://nexus.example.com/repository' },
    LOG_ENABLE_BODY: BOOL,
    DISABLE_SNIPPETS: BOOL,
    GITHUB_APP_ID: { value: 'Iv1.notanumber', with: (f) => GITHUB_APP(f) },
    GITHUB_APP_CLIENT_ID: { untyped: 'a free label: Snyk requires it and never sends it (the JWT issuer is the App ID)' },
    GITHUB_APP_INSTALLATION_ID: { value: 'all', with: (f) => GITHUB_APP(f) },
    GITHUB_APP_PRIVATE_PEM_PATH: { value: (f) => f.garbage, with: (f) => GITHUB_APP(f) },
    GITHUB_API: { value: 'ftp://api.github.com', with: (f) => GITHUB_APP(f), names: 'GITHUB_API' },
    GIT_COMMITTER_NAME: { value: 'Bot <bot@example.com>', with: SIGNING },
    GIT_COMMITTER_EMAIL: { value: 'bot at example', with: SIGNING },
    GPG_PRIVATE_KEY: { value: 'not a key', with: SIGNING },
    GPG_PASSPHRASE: { value: 'pass', with: () => ({ GIT_COMMITTER_NAME: 'Bot' }) },
  },
  server: {
    ...COMMON,
    BROKER_NODE_OLD_GENERATION: { value: 'none' },
    BROKER_INTERNAL_SECRET: { untyped: 'any string is a valid secret' },
    BROKER_SERVER_HOST: { untyped: 'an interface name or address; a wrong one fails at listen, not in config' },
    DISPATCHER_URL: URL_BAD,
    DISPATCHER_VERSION: { untyped: 'a free query parameter value' },
    BROKER_SERVER_PEER_ROUTING: BOOL,
    BROKER_SERVER_ROUTING_REFRESH_MS: { value: '10' },
    BROKER_SERVER_REGISTER_INTERVAL_MS: INT,
    BROKER_SERVER_ID: { value: 'id with spaces' },
    HOSTNAME: { value: 'pod-with a space', names: 'HOSTNAME' },
    BROKER_SERVER_PEER_URL: URL_BAD,
    BROKER_SERVER_PUBLIC_URL: URL_BAD,
    BROKER_SERVER_PROBE_DELAY_MS: INT,
    BROKER_SERVER_PROBE_TIMEOUT_MS: INT,
    SOCKET_PING_TIMEOUT: INT,
    BROKER_SERVER_REQUEST_TIMEOUT_MS: INT,
    BROKER_SERVER_HEADERS_TIMEOUT_MS: { value: '50' },
    BROKER_SERVER_DRAIN_GRACE_MS: NEGATIVE,
    BROKER_SERVER_BODY_LIMIT: INT,
    BROKER_SERVER_WEBHOOK_TIMEOUT_MS: INT,
    BROKER_SERVER_RETRY_BUFFER_BYTES: INT,
    BROKER_SERVER_ANSWER_GRACE_MS: INT,
    BROKER_SERVER_RECONNECT_WAIT_MS: INT,
    BROKER_CONNECTION_HANDSHAKE_TTL_MS: INT,
    MINIMAL_SUPPORTED_BROKER_VERSION: { value: 'four' },
    MINIMAL_RECOMMENDED_BROKER_VERSION: { value: '4.x' },
    BROKER_SERVER_MANDATORY_AUTH_ENABLED: BOOL,
    GATEWAY_HOSTNAME: { value: 'gateway.example', with: () => ({ BROKER_SERVER_MANDATORY_AUTH_ENABLED: 'true' }) },
    AUTHORIZATION_SERVICE: { ...URL_BAD, with: MANDATORY_AUTH },
    GATEWAY_HEADER_NAME: { value: 'bad header', with: MANDATORY_AUTH },
    GATEWAY_HEADER_VALUE: { untyped: 'any string is a valid header value' },
    GATEWAY_TLS_OPTION_NAME: { value: 'ciphers', with: MANDATORY_AUTH },
    GATEWAY_TLS_OPTION_VALUE: { untyped: 'false turns the check off, anything else leaves it on (as in snyk-broker)' },
    BROKER_SERVER_AUTH_TIMEOUT_MS: { ...INT, with: MANDATORY_AUTH },
    STALE_CONNECTIONS_CLEANUP_FREQUENCY: { ...INT, with: MANDATORY_AUTH },
    SNYK_INTERNAL_AUTH_CLIENT_ID_HEADER: { value: 'authorization', with: MANDATORY_AUTH },
  },
  dispatcher: {
    PORT: COMMON.PORT!,
    LOG_LEVEL: COMMON.LOG_LEVEL!,
    BROKER_NODE_IDLE_GC: COMMON.BROKER_NODE_IDLE_GC!,
    BROKER_NODE_YOUNG_GENERATION: COMMON.BROKER_NODE_YOUNG_GENERATION!,
    HTTP_PROXY: COMMON.HTTP_PROXY!,
    HTTPS_PROXY: COMMON.HTTPS_PROXY!,
    NO_PROXY: COMMON.NO_PROXY!,
    NODE_EXTRA_CA_CERTS: COMMON.NODE_EXTRA_CA_CERTS!,
    BROKER_INTERNAL_SECRET: { untyped: 'any string is a valid secret' },
    DISPATCHER_HOST: { untyped: 'an interface name or address; a wrong one fails at listen, not in config' },
    DISPATCHER_URL_PREFIX: { value: 'no-slash' },
    MAX_CLIENTS_PER_TOKEN: { value: '0' },
    RETRY_AFTER_SECONDS: INT,
    CLIENT_LEASE_MS: INT,
    CLIENT_CONNECT_GRACE_MS: { value: '10' },
    SERVER_TTL_MS: INT,
    SERVER_PROBE_INTERVAL_MS: NEGATIVE,
    SERVER_PROBE_TIMEOUT_MS: INT,
    SERVER_PROBE_FAILURES: { value: '1000' },
    DISPATCHER_REDIS_URL: { value: 'http://redis:6379' },
    DISPATCHER_REDIS_KEY_PREFIX: { untyped: 'a free key prefix' },
    DISPATCHER_SWEEP_INTERVAL_MS: INT,
    DISPATCHER_STARTUP_GRACE_MS: NEGATIVE,
  },
};

const HELP: Record<Program, string> = { client: CLIENT_ENV_HELP, server: SERVER_ENV_HELP, dispatcher: DISPATCHER_ENV_HELP };

/** Variable names from the first column of a help text (`A / B`, `<VAR>, <VAR>_POOL` placeholders skipped). */
export function helpVariables(help: string): string[] {
  const names = new Set<string>();
  for (const line of help.split('\nEndpoints')[0]!.split('\n')) {
    if (!/^ {2}\S/.test(line)) continue;
    // The name column: names (or <VAR> placeholders) joined by "/" or ","; the description follows.
    const words = line.trim().split(/\s+/);
    for (let i = 0; i < words.length; i++) {
      const name = words[i]!.replace(/,$/, '');
      if (/^[A-Z][A-Z0-9_]*$/.test(name)) names.add(name);
      else if (!/^<[A-Z]+>(_[A-Z]+)?$/.test(name)) break;
      // Another name follows only after "/" or a trailing ","; anything else is the description.
      if (words[i + 1] === '/') i++;
      else if (!words[i]!.endsWith(',')) break;
    }
  }
  return [...names];
}

let files: Files;
before(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bad-config-'));
  const accept = join(dir, 'accept.json');
  await writeFile(accept, JSON.stringify({ private: [], public: [] }));
  await writeFile(join(dir, 'garbage.pem'), 'this is not a PEM file\n');
  // A real certificate/key pair is only needed next to the bad one; any PEM cert works for that.
  const { makeTestPki } = await import('../support/tls.js');
  const pki = await makeTestPki();
  files = { dir, accept, garbage: join(dir, 'garbage.pem'), missing: join(dir, 'no', 'such', 'file.pem'), cert: pki.certFile, key: pki.keyFile };
});
after(async () => {
  if (files) await rm(files.dir, { recursive: true, force: true });
});

/** What each program needs to start when nothing else is wrong. */
function baseEnv(program: Program): Record<string, string> {
  const env: Record<string, string> = { PORT: '0', LOG_LEVEL: 'warn' };
  if (program === 'client') Object.assign(env, { BROKER_TOKEN: '6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b', BROKER_SERVER_URL: 'http://127.0.0.1:9', ACCEPT: files.accept, PREFLIGHT_CHECKS_ENABLED: 'false' });
  if (program === 'server') env.BROKER_SERVER_HOST = '127.0.0.1';
  if (program === 'dispatcher') env.DISPATCHER_HOST = '127.0.0.1';
  return env;
}

interface Outcome {
  code: number | string | null;
  stderr: string;
  stdout: string;
}

/** Runs `broker <program>` with exactly `env`; a program still running after the deadline is killed (and fails the case). */
function run(program: Program, env: Record<string, string>, timeoutMs = 30_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, program], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal, stderr, stdout });
    });
  });
}

/** Runs `jobs` with at most `limit` at once. */
async function bounded<T>(jobs: Array<() => Promise<T>>, limit: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await jobs[i]!();
      }
    }),
  );
  return out;
}

function isBad(e: Entry): e is Bad {
  return 'value' in e;
}

test('every variable in the help has a bad value or a reason', () => {
  for (const program of ['client', 'server', 'dispatcher'] as const) {
    const listed = helpVariables(HELP[program]);
    assert.ok(listed.length > 10, `${program}: only ${listed.length} variables parsed from the help`);
    const unclassified = listed.filter((name) => TABLE[program][name] === undefined);
    assert.deepEqual(unclassified, [], `${program}: variables in --help without a bad value (or an untyped reason) in bad-config.test.ts`);
    const stale = Object.keys(TABLE[program]).filter((name) => !listed.includes(name));
    assert.deepEqual(stale, [], `${program}: variables in the table that --help does not list`);
  }
});

test('each typed variable with a bad value: exit 2 and stderr names it', async () => {
  const cases = (['client', 'server', 'dispatcher'] as const).flatMap((program) =>
    Object.entries(TABLE[program])
      .filter((e): e is [string, Bad] => isBad(e[1]))
      .map(([name, bad]) => ({ program, name, bad })),
  );
  const started = Date.now();
  const results = await bounded(
    cases.map((c) => async () => {
      const value = typeof c.bad.value === 'function' ? c.bad.value(files) : c.bad.value;
      const env = { ...baseEnv(c.program), ...(c.bad.with?.(files) ?? {}), [c.name]: value };
      return { ...c, value, outcome: await run(c.program, env) };
    }),
    4,
  );
  const failures = results
    .filter((r) => r.outcome.code !== 2 || !r.outcome.stderr.includes(r.bad.names ?? r.name))
    .map((r) => `${r.program} ${r.name}=${JSON.stringify(r.value)}: exit ${r.outcome.code}; stderr: ${r.outcome.stderr.trim().slice(0, 300) || '(empty)'}`);
  console.log(`bad-config sweep: ${cases.length} variables over 3 programs in ${Date.now() - started} ms`);
  assert.deepEqual(failures, []);
  // A message names the problem without echoing secrets: no value with userinfo is repeated.
  for (const r of results) assert.ok(!r.outcome.stderr.includes('at async'), `${r.program} ${r.name}: a stack trace instead of a message`);
});

test('malformed accept files, unreadable files and a lone HTTPS_CERT: exit 2 naming the problem', async () => {
  const f = (name: string, content: string) => writeFile(join(files.dir, name), content).then(() => join(files.dir, name));
  const badJson = await f('bad-json.json', '{"private": [ {"method": "GET", ');
  const wrongShape = await f('wrong-shape.json', JSON.stringify({ private: { method: 'GET', path: '/*' }, public: [] }));
  // A missing path is '/' and a path without a leading '/' gets one, as in snyk-broker; a non-string path is refused.
  const noPath = await f('no-path.json', JSON.stringify({ private: [{ method: 'GET', path: 42, origin: 'http://o' }], public: [] }));
  const notAnObject = await f('array.json', JSON.stringify([1, 2, 3]));
  const badOrigin = await f('bad-origin.json', JSON.stringify({ private: [{ method: 'GET', path: '/*', origin: 'http://not a host' }], public: [] }));
  const directory = join(files.dir, 'a-directory.json');
  await mkdir(directory, { recursive: true });
  const cases: Array<{ what: string; program: Program; env: Record<string, string>; mentions: RegExp }> = [];
  for (const program of ['client', 'server'] as const) {
    cases.push(
      { what: 'ACCEPT with bad JSON', program, env: { ACCEPT: badJson }, mentions: /ACCEPT.*(JSON|json)/ },
      { what: 'ACCEPT with private as an object', program, env: { ACCEPT: wrongShape }, mentions: /ACCEPT.*private/ },
      { what: 'ACCEPT with a rule whose path is not a string', program, env: { ACCEPT: noPath }, mentions: /ACCEPT.*path/ },
      { what: 'ACCEPT holding an array', program, env: { ACCEPT: notAnObject }, mentions: /ACCEPT/ },
      { what: 'ACCEPT with an origin that is not a URL', program, env: { ACCEPT: badOrigin }, mentions: /ACCEPT.*origin .* is not a URL/ },
      { what: 'ACCEPT naming a directory', program, env: { ACCEPT: directory }, mentions: /ACCEPT/ },
      { what: 'ACCEPT naming a missing file', program, env: { ACCEPT: files.missing }, mentions: /ACCEPT/ },
      { what: 'HTTPS_CERT without HTTPS_KEY', program, env: { HTTPS_CERT: files.cert }, mentions: /HTTPS_CERT and HTTPS_KEY must be set together/ },
      { what: 'HTTPS_KEY that does not match HTTPS_CERT', program, env: { HTTPS_CERT: files.cert, HTTPS_KEY: files.garbage }, mentions: /HTTPS_CERT \/ HTTPS_KEY/ },
      { what: 'NODE_EXTRA_CA_CERTS missing', program, env: { NODE_EXTRA_CA_CERTS: files.missing }, mentions: /NODE_EXTRA_CA_CERTS: cannot read/ },
      { what: 'NODE_EXTRA_CA_CERTS garbage', program, env: { NODE_EXTRA_CA_CERTS: files.garbage }, mentions: /NODE_EXTRA_CA_CERTS: .* holds no PEM certificate/ },
    );
  }
  cases.push(
    { what: 'CA_CERT missing', program: 'client', env: { CA_CERT: files.missing }, mentions: /CA_CERT: cannot read/ },
    { what: 'CA_CERT garbage', program: 'client', env: { CA_CERT: files.garbage }, mentions: /CA_CERT: .* holds no PEM certificate/ },
    { what: 'CA_CERT a directory', program: 'client', env: { CA_CERT: directory }, mentions: /CA_CERT: cannot read .*EISDIR/ },
    { what: 'proxy URL with a password: named, password not echoed', program: 'client', env: { HTTPS_PROXY: 'http://user:proxy-pw-123@bad host:3128' }, mentions: /HTTPS_PROXY must be a URL/ },
  );
  const results = await bounded(
    cases.map((c) => async () => ({ ...c, outcome: await run(c.program, { ...baseEnv(c.program), ...c.env }) })),
    4,
  );
  const failures = results
    .filter((r) => r.outcome.code !== 2 || !r.mentions.test(r.outcome.stderr))
    .map((r) => `${r.program}: ${r.what}: exit ${r.outcome.code}; stderr: ${r.outcome.stderr.trim().slice(0, 300) || '(empty)'}`);
  assert.deepEqual(failures, []);
  for (const r of results) assert.ok(!r.outcome.stderr.includes('proxy-pw-123'), `${r.what}: a password is echoed on stderr`);
});
