// `broker dispatcher` as a process, spoken to exactly as the real snyk-broker client and
// server speak to a dispatcher (protocol.md §6.2 and §6.4).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createHash, randomUUID } from 'node:crypto';
import { ProcessGroup, type RunningProcess } from '../support/processes.js';
import { freePort } from '../support/ports.js';
import { CLI } from '../support/paths.js';
import { FAILURES } from '../../src/protocol/failures.js';

const TOKEN = 'b9460892-5397-48f1-8697-488769ae3797';
const HASHED = createHash('sha256').update(TOKEN).digest('hex');

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One raw HTTP/1.1 call; `chunked` sends the body without content-length, as the real client does. */
function call(port: number, method: string, path: string, headers: Record<string, string>, body?: string, chunked = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { ...headers, ...(body !== undefined && !chunked ? { 'content-length': String(Buffer.byteLength(body)) } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    if (body !== undefined) {
      if (chunked) req.setHeader('transfer-encoding', 'chunked');
      req.end(body);
    } else req.end();
  });
}

/** §6.2 verbatim: the real client's allocation call. */
function allocate(port: number, clientId: string): Promise<Answer> {
  return call(
    port,
    'POST',
    `/hidden/broker/${HASHED}/connections/${clientId}?version=2022-12-01%7Eexperimental`,
    {
      'Content-type': 'application/vnd.api+json',
      'snyk-request-id': randomUUID(),
      'x-broker-origin-ua': 'not-provided',
      'user-agent': 'Snyk Broker Client local',
      Connection: 'keep-alive',
    },
    JSON.stringify({ data: { attributes: { deployment_location: 'snyk-broker-client', broker_token_first_char: 'b' } } }),
    true,
  );
}

/** §6.4 common headers (axios). */
const SERVER_HEADERS = {
  Accept: 'application/json, text/plain, */*',
  'Content-Type': 'application/vnd.api+json',
  Connection: 'Keep-Alive',
  'Keep-Alive': 'timeout=60, max=10',
  'User-Agent': 'axios/1.19.0',
  'Accept-Encoding': 'gzip, compress, deflate, br',
};
const V = 'version=2022-12-02%7Eexperimental';
const serverCall = (port: number, method: string, path: string, body?: unknown) =>
  call(port, method, path, { ...SERVER_HEADERS, 'Snyk-Request-Id': randomUUID() }, body === undefined ? undefined : JSON.stringify(body));
const link = (id: string) => ({ data: { attributes: { health_check_link: `http://broker-server-${id}/healthcheck` } } });

describe('broker dispatcher (process)', () => {
  const group = new ProcessGroup();
  let port: number;
  let proc: RunningProcess;

  before(async () => {
    port = await freePort();
    proc = group.broker('dispatcher', 'dispatcher', { PORT: String(port), LOG_LEVEL: 'debug', SERVER_PROBE_INTERVAL_MS: '0' });
    await proc.waitForOutput('dispatcher listening', 30_000);
  });
  after(async () => {
    await group.stopAll();
  });

  it('allocates over HTTP as the real client and server speak, limits to 4, frees on DELETE', async () => {
    assert.equal((await allocate(port, randomUUID())).status, 503, 'no server yet');
    for (const id of ['0', '1', '2']) {
      const res = await serverCall(port, 'POST', `/internal/brokerservers/${id}?${V}`, link(id));
      assert.equal(res.status, 200, res.body);
    }
    const clients = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    const servers: string[] = [];
    for (const c of clients) {
      const res = await allocate(port, c);
      assert.ok(res.status === 200 || res.status === 201, res.body);
      const body = JSON.parse(res.body) as { data: { id: string; attributes: { server_id: unknown } } };
      assert.equal(body.data.id, c);
      assert.equal(typeof body.data.attributes.server_id, 'string');
      servers.push(body.data.attributes.server_id as string);
      // The server reports both tunnels (§6.4 client-connected), then a ping.
      const q = `broker_client_id=${c}&request_type=client-connected&${V}`;
      const body2 = { data: { attributes: { health_check_link: `http://broker-server-${servers.at(-1)}/healthcheck`, broker_client_version: 'local' } } };
      for (let i = 0; i < 2; i++) assert.equal((await serverCall(port, 'POST', `/internal/brokerservers/${servers.at(-1)}/connections/${HASHED}?${q}`, body2)).status, 200);
      const ping = `broker_client_id=${c}&latency=2&request_type=client-pinged&${V}`;
      assert.equal((await serverCall(port, 'POST', `/internal/brokerservers/${servers.at(-1)}/connections/${HASHED}?${ping}`, body2)).status, 200);
    }
    assert.equal(new Set(servers).size, 3, `three distinct servers first: ${servers}`);

    const fifth = randomUUID();
    const refused = await allocate(port, fifth);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers['retry-after'], '2');
    const err = JSON.parse(refused.body) as { errors: Array<{ status: string; code: string; detail: string }> };
    assert.equal(err.errors[0]!.status, '429');
    assert.equal(err.errors[0]!.code, FAILURES.MAX_CLIENTS_PER_TOKEN.code);
    assert.match(err.errors[0]!.detail, /4 clients/);

    // Our client releases on SIGTERM: the slot is free at once.
    const del = await call(port, 'DELETE', `/hidden/broker/${HASHED}/connections/${clients[1]}?version=2022-12-01%7Eexperimental`, {});
    assert.equal(del.status, 204);
    const granted = await allocate(port, fifth);
    assert.ok(granted.status === 201, granted.body);
    assert.equal((JSON.parse(granted.body) as { data: { attributes: { server_id: string } } }).data.attributes.server_id, servers[1], 'the freed server');

    // A client killed (both tunnels reported closed) frees its slot after the lease (2 s).
    const killed = clients[2]!;
    for (let i = 0; i < 2; i++) {
      const res = await serverCall(port, 'DELETE', `/internal/brokerservers/${servers[2]}/connections/${HASHED}?broker_client_id=${killed}&${V}`);
      assert.ok(res.status >= 200 && res.status < 300);
    }
    const sixth = randomUUID();
    const waiting = await allocate(port, sixth);
    assert.equal(waiting.status, 429);
    const deadline = Date.now() + 20_000;
    let got: Answer | undefined;
    while (Date.now() < deadline) {
      const res = await allocate(port, sixth);
      if (res.status !== 429) {
        got = res;
        break;
      }
      // Follow Retry-After as a client must.
      await new Promise((r) => setTimeout(r, Number(res.headers['retry-after']) * 1000));
    }
    assert.ok(got && got.status === 201, 'the waiting client got the killed client’s slot');

    // Routing lookup and server list.
    const lookup = await call(port, 'GET', `/internal/tokens/${HASHED}/connections`, {});
    const l = JSON.parse(lookup.body) as { data: { attributes: { servers: Array<{ server_id: string; connections: Array<{ client_id: string }> }> } } };
    const connected = l.data.attributes.servers.flatMap((s) => s.connections.map((c) => c.client_id)).sort();
    assert.deepEqual(connected, [clients[0], clients[1], clients[3]].sort(), 'clients[1] released but its tunnels are still open');

    // server-stopping: no new clients there.
    assert.equal((await serverCall(port, 'DELETE', `/internal/brokerservers/${servers[0]}?${V}`)).status, 204);
    const list = JSON.parse((await call(port, 'GET', '/internal/brokerservers', {})).body) as { data: Array<{ id: string; attributes: { status: string } }> };
    assert.equal(list.data.find((s) => s.id === servers[0])?.attributes.status, 'stopping');

    const metrics = (await call(port, 'GET', '/metrics', {})).body;
    assert.match(metrics, /broker_dispatcher_refusals_total\{code="MAX_CLIENTS_PER_TOKEN"\} [1-9]/);
    assert.match(metrics, new RegExp(`broker_dispatcher_token_connections\\{token_hash="${HASHED.slice(0, 8)}"\\} \\d+`));
    assert.ok(!proc.output().includes(TOKEN));
    for (const p of ['/healthcheck', '/livez', '/readyz']) assert.equal((await call(port, 'GET', p, {})).status, 200);
  });

  it('restarted with an empty store: relearns servers and clients from reports; new clients wait out the startup grace', async () => {
    const p = await freePort();
    const d = group.broker('dispatcher-restarted', 'dispatcher', { PORT: String(p), SERVER_PROBE_INTERVAL_MS: '0', DISPATCHER_STARTUP_GRACE_MS: '3000' });
    await d.waitForOutput('dispatcher listening', 30_000);
    // Servers that were running all along: their next pings are all the dispatcher hears.
    const known = [randomUUID(), randomUUID()];
    for (const [i, c] of known.entries()) {
      const res = await serverCall(p, 'POST', `/internal/brokerservers/${i}/connections/${HASHED}?broker_client_id=${c}&latency=1&request_type=client-pinged&${V}`, link(String(i)));
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-broker-dispatcher-register'], 'true', 'asked to register again');
    }
    const fresh = randomUUID();
    const early = await allocate(p, fresh);
    assert.equal(early.status, 429);
    assert.equal((JSON.parse(early.body) as { errors: Array<{ code: string }> }).errors[0]!.code, 'WARMING_UP');
    const back = await allocate(p, known[1]!);
    assert.equal(back.status, 200, 'a known client is served at once');
    assert.equal((JSON.parse(back.body) as { data: { attributes: { server_id: string } } }).data.attributes.server_id, '1');
    const deadline = Date.now() + 30_000;
    let last: Answer | undefined;
    while (Date.now() < deadline) {
      last = await allocate(p, fresh);
      if (last.status !== 429) break;
      await new Promise((r) => setTimeout(r, Number(last!.headers['retry-after']) * 1000));
    }
    assert.equal(last?.status, 201, 'the new client is allocated once the grace is over');
  });

  it('stops cleanly on SIGTERM (exit 0)', async () => {
    const p = await freePort();
    const d = group.broker('dispatcher-stop', 'dispatcher', { PORT: String(p) });
    await d.waitForOutput('dispatcher listening', 30_000);
    assert.equal(await d.stop(10_000), 0);
  });

  it('a bad variable stops the start with exit 2, naming it', async () => {
    const bad = group.broker('dispatcher-bad', 'dispatcher', { PORT: 'eighty', MAX_CLIENTS_PER_TOKEN: 'four', DISPATCHER_REDIS_URL: 'http://nope' });
    const code = await bad.exited;
    assert.equal(code, 2);
    for (const name of ['PORT', 'MAX_CLIENTS_PER_TOKEN', 'DISPATCHER_REDIS_URL']) assert.match(bad.output(), new RegExp(name));
  });

  it('--help lists the environment', async () => {
    const h = group.spawnNode('dispatcher-help', CLI, ['dispatcher', '--help'], {});
    assert.equal(await h.exited, 0);
    assert.match(h.output(), /MAX_CLIENTS_PER_TOKEN/);
    assert.match(h.output(), /DISPATCHER_REDIS_URL/);
  });
});
