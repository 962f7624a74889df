import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const run = promisify(execFile);

export interface TestPki {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

/** A throwaway CA and a server certificate for 127.0.0.1/localhost (or `altNames`, openssl subjectAltName syntax), made with openssl. */
export async function makeTestPki(altNames = 'IP:127.0.0.1,DNS:localhost'): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'pki-'));
  const f = (n: string) => join(dir, n);
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=ha-broker test CA']);
  await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1']);
  await writeFile(f('ext.cnf'), `subjectAltName=${altNames}\n`);
  await run('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('ext.cnf')]);
  return {
    dir,
    caFile: f('ca.pem'),
    certFile: f('server.pem'),
    keyFile: f('server.key'),
    cert: await readFile(f('server.pem'), 'utf8'),
    key: await readFile(f('server.key'), 'utf8'),
  };
}
