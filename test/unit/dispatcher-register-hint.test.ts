// A dispatcher restarted with an empty store learns the running clients from their servers. A
// server registering with open tunnels that the store did not know is answered with the
// register hint, so it announces its tunnels at once instead of one per ping (~25 s): the fault
// suite's "dispatcher restarted with an empty memory store" converges faster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDispatcherConfig } from '../../src/config/dispatcher.js';
import { createDispatcher } from '../../src/dispatcher/dispatcher.js';
import { createMemoryStore } from '../../src/dispatcher/memory-store.js';

test('registration with open tunnels unknown to the store carries the register hint, once', async (t) => {
  const config = await loadDispatcherConfig({ PORT: '0', SERVER_PROBE_INTERVAL_MS: '0', DISPATCHER_HOST: '127.0.0.1' });
  const d = createDispatcher(config, { store: createMemoryStore() });
  await d.start();
  t.after(() => d.stop('test'));
  const register = (id: string, openTunnels: number) =>
    fetch(`http://127.0.0.1:${d.port}/internal/brokerservers/${id}?version=2022-12-02%7Eexperimental`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.api+json' },
      body: JSON.stringify({ data: { attributes: { health_check_link: `http://broker-server-${id}/healthcheck`, peer_url: `http://10.0.0.${id}:7341`, open_tunnels: openTunnels } } }),
    });
  const hinted = async (id: string, openTunnels: number) => {
    const res = await register(id, openTunnels);
    assert.equal(res.status, 200);
    await res.body?.cancel();
    return res.headers.get('x-broker-dispatcher-register') === 'true';
  };
  assert.equal(await hinted('0', 4), true, 'a server holding tunnels we never heard of');
  assert.equal(await hinted('0', 4), false, 'the same server registering again');
  assert.equal(await hinted('1', 0), false, 'a new server without tunnels has nothing to announce');
  assert.equal(await hinted('1', 2), false, 'known (registered) servers are never hinted');
});
