// A dispatcher restarted with an empty store answers the server's next registration with the
// register hint (it did not know the server, which holds tunnels): the server announces its open
// tunnels at once (client-connected per tunnel) instead of waiting for each tunnel's ping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { listen, closeServer } from '../../src/http/server-helpers.js';
import { FakeTunnelClient } from '../support/fake-tunnel-client.js';
import { startInProcessServer } from '../support/in-process-server.js';
import { waitFor } from '../support/wait.js';

const T = 'b9460892-5397-48f1-8697-488769ae3797';

test('a registration answered with the register hint makes the server announce its open tunnels', async (t) => {
  const calls: Array<{ method: string; url: string; at: number }> = [];
  let restarted = false;
  const dispatcher = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      calls.push({ method: req.method!, url: req.url!, at: Date.now() });
      const registration = req.method === 'POST' && /^\/internal\/brokerservers\/[^/?]+\?/.test(req.url!);
      res.writeHead(200, { 'content-type': 'application/json', ...(registration && restarted ? { 'x-broker-dispatcher-register': 'true' } : {}) });
      res.end('{}');
    });
  });
  const port = await listen(dispatcher, 0, '127.0.0.1');
  t.after(() => closeServer(dispatcher));
  const s = await startInProcessServer({ DISPATCHER_URL: `http://127.0.0.1:${port}`, HOSTNAME: 'broker-server-3', BROKER_SERVER_REGISTER_INTERVAL_MS: '300' });
  t.after(() => s.stop());
  const client = new FakeTunnelClient(s.url, T, { clientId: 'client-1', version: '4.190.0' });
  t.after(() => client.close());
  await client.opened;
  await waitFor('client-connected', () => calls.some((c) => c.url.includes('request_type=client-connected')));
  const restartAt = Date.now();
  restarted = true;
  // No ping from the client meanwhile: only the hint on a registration can bring this report.
  const again = await waitFor('client-connected re-announced after the hinted registration', () => calls.find((c) => c.at >= restartAt && c.url.includes('request_type=client-connected')), { timeoutMs: 10_000 });
  assert.match(again.url, /broker_client_id=client-1&connection_role=primary/);
  assert.ok(calls.some((c) => c.at >= restartAt && c.at <= again.at && /^\/internal\/brokerservers\/[^/?]+\?/.test(c.url)), 'announced without a registration first');
});
