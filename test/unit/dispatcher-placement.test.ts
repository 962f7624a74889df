import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chooseServer, rankServers, rendezvousWeight } from '../../src/dispatcher/placement.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const SERVERS = ['0', '1', '2'];

describe('rendezvous placement', () => {
  it('weights are a pure function of (token, server)', () => {
    const t = sha('token-a');
    assert.equal(rendezvousWeight(t, '1'), rendezvousWeight(t, '1'));
    assert.notEqual(rendezvousWeight(t, '1'), rendezvousWeight(t, '2'));
    assert.notEqual(rendezvousWeight(t, '1'), rendezvousWeight(sha('token-b'), '1'));
    // Pinned value: a change of the hash construction would silently re-place every client.
    assert.deepEqual(rankServers(sha('b9460892-5397-48f1-8697-488769ae3797'), SERVERS), ['2', '0', '1']);
  });

  it('the order does not depend on the order servers are listed in', () => {
    for (let i = 0; i < 50; i++) {
      const t = sha(`t${i}`);
      assert.deepEqual(rankServers(t, ['a', 'b', 'c', 'd']), rankServers(t, ['d', 'c', 'b', 'a']));
    }
  });

  it('removing a server keeps the relative order of the others (only its clients move)', () => {
    for (let i = 0; i < 100; i++) {
      const t = sha(`t${i}`);
      const full = rankServers(t, ['0', '1', '2', '3', '4']);
      const removed = full[i % 5]!;
      assert.deepEqual(rankServers(t, full.filter((s) => s !== removed)), full.filter((s) => s !== removed));
    }
  });

  it('spreads tokens over servers: every server is first choice for a fair share of 3000 tokens', () => {
    const first = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const top = rankServers(sha(`token-${i}`), SERVERS)[0]!;
      first.set(top, (first.get(top) ?? 0) + 1);
    }
    for (const s of SERVERS) {
      const n = first.get(s) ?? 0;
      assert.ok(n > 800 && n < 1200, `server ${s} first for ${n} of 3000 tokens`);
    }
  });

  it('chooses an unused server first, in preference order, then the least used', () => {
    const t = sha('token-x');
    const order = rankServers(t, SERVERS);
    assert.equal(chooseServer(t, SERVERS, new Map()), order[0]);
    assert.equal(chooseServer(t, SERVERS, new Map([[order[0]!, 1]])), order[1]);
    assert.equal(chooseServer(t, SERVERS, new Map([[order[0]!, 1], [order[1]!, 1]])), order[2]);
    assert.equal(chooseServer(t, SERVERS, new Map([[order[0]!, 1], [order[1]!, 1], [order[2]!, 1]])), order[0]);
    assert.equal(chooseServer(t, SERVERS, new Map([[order[0]!, 2], [order[1]!, 1], [order[2]!, 2]])), order[1]);
    assert.equal(chooseServer(t, [], new Map()), undefined);
  });

  it('usage on servers that are not candidates is ignored', () => {
    const t = sha('token-y');
    const order = rankServers(t, ['0', '1']);
    assert.equal(chooseServer(t, ['0', '1'], new Map([['9', 3]])), order[0]);
  });
});
