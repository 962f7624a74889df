// The errorType of a failed origin call follows the contract (protocol §3.3) and the real
// client's errno map: only a connection never made is DOWNSTREAM_UNREACHABLE; a reset after
// connecting is DOWNSTREAM_ERROR (issue 6 fault suite found resets reported as unreachable).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { originError } from '../../src/client/origin-egress.js';

function sysError(code: string, message = code): Error {
  return Object.assign(new Error(message), { code });
}

function undiciWrapped(code: string): Error {
  // undici wraps the socket error: SocketError (UND_ERR_SOCKET) with the errno as its cause.
  return Object.assign(new Error('other side closed', { cause: sysError(code) }), { code: 'UND_ERR_SOCKET' });
}

test('refused, unresolvable, unroutable origins are DOWNSTREAM_UNREACHABLE (502)', () => {
  for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']) {
    const e = originError(sysError(code));
    assert.equal(e.code, 'DOWNSTREAM_UNREACHABLE', code);
    assert.equal(e.status, 502);
  }
});

test('timeouts are DOWNSTREAM_TIMEOUT (504)', () => {
  for (const code of ['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT']) {
    const e = originError(sysError(code));
    assert.equal(e.code, 'DOWNSTREAM_TIMEOUT', code);
    assert.equal(e.status, 504);
  }
});

test('a reset or a socket closed after connecting is DOWNSTREAM_ERROR (502), not unreachable', () => {
  for (const err of [sysError('ECONNRESET'), sysError('EPIPE'), undiciWrapped('ECONNRESET'), Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' })]) {
    const e = originError(err);
    assert.equal(e.code, 'DOWNSTREAM_ERROR', err.message);
    assert.equal(e.status, 502);
  }
});
