import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { EnvReader } from './env.js';

/** Reads a file named by a variable; an unreadable one becomes a problem naming the variable. */
export async function readNamed(r: EnvReader, name: string, path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(resolve(path));
  } catch (err) {
    r.problem(`${name}: cannot read ${resolve(path)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    return undefined;
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * A CA bundle variable (CA_CERT, NODE_EXTRA_CA_CERTS): when set, the file must be readable and
 * hold PEM certificates. Node itself only warns about a bad NODE_EXTRA_CA_CERTS and starts without
 * it, which surfaces much later as "certificate not trusted"; here it stops the start instead.
 */
export async function checkCaBundle(r: EnvReader, name: string): Promise<string | undefined> {
  const path = r.string(name);
  if (path === undefined) return undefined;
  const content = await readNamed(r, name, path);
  if (!content) return undefined;
  const blocks = content.toString('utf8').match(PEM_CERT) ?? [];
  if (blocks.length === 0) {
    r.problem(`${name}: ${resolve(path)} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    return undefined;
  }
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      r.problem(`${name}: certificate ${i + 1} in ${resolve(path)} cannot be parsed (${(err as Error).message})`);
      return undefined;
    }
  }
  return resolve(path);
}

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  certPath: string;
  keyPath: string;
}

/** HTTPS_CERT / HTTPS_KEY (Snyk's names): both or neither, readable, and a matching PEM pair. */
export async function readTlsFiles(r: EnvReader): Promise<TlsFiles | undefined> {
  const certPath = r.string('HTTPS_CERT');
  const keyPath = r.string('HTTPS_KEY');
  if (certPath === undefined && keyPath === undefined) return undefined;
  if (certPath === undefined || keyPath === undefined) {
    r.problem(`HTTPS_CERT and HTTPS_KEY must be set together (only ${certPath === undefined ? 'HTTPS_KEY' : 'HTTPS_CERT'} is set)`);
    return undefined;
  }
  const cert = await readNamed(r, 'HTTPS_CERT', certPath);
  const key = await readNamed(r, 'HTTPS_KEY', keyPath);
  if (!cert || !key) return undefined;
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    r.problem(`HTTPS_CERT / HTTPS_KEY: ${resolve(certPath)} and ${resolve(keyPath)} are not a usable PEM certificate and matching private key (${(err as Error).message})`);
    return undefined;
  }
  return { cert, key, certPath: resolve(certPath), keyPath: resolve(keyPath) };
}

/** A proxy variable (HTTP_PROXY, https_proxy...) must be an http(s) URL; undici cannot use anything else. */
export function checkProxyUrl(r: EnvReader, name: string): void {
  const v = r.raw(name);
  if (v !== undefined) r.url(name, v);
}

/**
 * The variables Node and undici read themselves for every outbound call (NODE_EXTRA_CA_CERTS,
 * the proxy variables): checked at start so a typo stops it with exit 2 instead of failing later.
 */
export async function checkEgressVariables(r: EnvReader): Promise<void> {
  await checkCaBundle(r, 'NODE_EXTRA_CA_CERTS');
  for (const name of ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy']) checkProxyUrl(r, name);
}
