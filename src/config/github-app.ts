import { createPrivateKey, type KeyObject } from 'node:crypto';
import { resolve } from 'node:path';
import type { EnvReader } from './env.js';
import { readNamed } from './files.js';

/**
 * GitHub App authentication (Snyk's github-server-app and github-cloud-app types): the App
 * signs a JWT with its private key and trades it for an installation token, which the accept
 * rules send as `${GHA_ACCESS_TOKEN}` (`${JWT_TOKEN}` for the App's own endpoints).
 */
export interface GithubAppConfig {
  appId: string;
  /** Snyk requires it and never uses it (the JWT's issuer is the App ID); kept for the same checks. */
  clientId: string;
  installationId: string;
  privateKey: KeyObject;
  /** Where the key came from, for messages (never its content). */
  privateKeyPath: string;
  /** The GitHub API host (`GITHUB_API`, Snyk's form without a scheme; a scheme is accepted too). */
  apiBaseUrl: string;
}

/** The variables, in the order their problems are listed. */
export const GITHUB_APP_VARIABLES = ['GITHUB_APP_ID', 'GITHUB_APP_CLIENT_ID', 'GITHUB_APP_INSTALLATION_ID', 'GITHUB_APP_PRIVATE_PEM_PATH', 'GITHUB_API'] as const;

/** The variables the token source fills in for the accept rules (never read from the environment). */
export const GITHUB_APP_LIVE_VARIABLES = ['GHA_ACCESS_TOKEN', 'JWT_TOKEN'] as const;

const APP_TYPES = new Set(['github-server-app', 'github-cloud-app']);

/**
 * The GitHub App settings, or undefined when none is asked for. Asked for: any GITHUB_APP_*
 * variable set; then every one of them must be (an App with a missing part would send every
 * request without a credential). A preset of an App type without any of them only gets a note.
 */
export async function readGithubApp(r: EnvReader, scmType: string | undefined): Promise<GithubAppConfig | undefined> {
  const set = GITHUB_APP_VARIABLES.filter((n) => n !== 'GITHUB_API' && r.string(n) !== undefined);
  if (set.length === 0) return undefined;
  const missing = GITHUB_APP_VARIABLES.filter((n) => r.string(n) === undefined);
  if (missing.length) {
    const why = scmType && APP_TYPES.has(scmType) ? ` (BROKER_SCM_TYPE=${scmType})` : '';
    r.problem(`GitHub App${why}: ${set.join(', ')} ${set.length === 1 ? 'is' : 'are'} set but ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not; an installation token needs all of ${GITHUB_APP_VARIABLES.join(', ')}`);
    return undefined;
  }
  const appId = r.string('GITHUB_APP_ID')!;
  const installationId = r.string('GITHUB_APP_INSTALLATION_ID')!;
  const appIdOk = /^\d+$/.test(appId);
  const installationIdOk = /^\d+$/.test(installationId);
  if (!appIdOk) r.problem(`GITHUB_APP_ID: ${JSON.stringify(appId)} is not a GitHub App ID (the App's number, on its settings page; not its client ID)`);
  if (!installationIdOk) r.problem(`GITHUB_APP_INSTALLATION_ID: ${JSON.stringify(installationId)} is not an installation ID (a number)`);
  const apiBaseUrl = apiBase(r, r.string('GITHUB_API')!);
  const path = r.string('GITHUB_APP_PRIVATE_PEM_PATH')!;
  const privateKey = await readPrivateKey(r, path);
  if (!privateKey || !apiBaseUrl || !appIdOk || !installationIdOk) return undefined;
  return { appId, clientId: r.string('GITHUB_APP_CLIENT_ID')!, installationId, privateKey, privateKeyPath: resolve(path), apiBaseUrl };
}

function apiBase(r: EnvReader, value: string): string | undefined {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `https://${value}`;
  try {
    const url = new URL(withScheme);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('not http(s)');
    return url.toString().replace(/\/$/, '');
  } catch {
    r.problem(`GITHUB_API: ${JSON.stringify(value)} is not a host name (e.g. api.github.com, or ghe.example.com/api/v3)`);
    return undefined;
  }
}

/** The App's private key: a readable PEM file holding an RSA key (GitHub signs Apps' keys as RSA). */
async function readPrivateKey(r: EnvReader, path: string): Promise<KeyObject | undefined> {
  const pem = await readNamed(r, 'GITHUB_APP_PRIVATE_PEM_PATH', path);
  if (!pem) return undefined;
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    // The parser's message never quotes the key.
    r.problem(`GITHUB_APP_PRIVATE_PEM_PATH: ${resolve(path)} is not a PEM private key (${(err as Error).message}); download the App's key from its settings page`);
    return undefined;
  }
  if (key.asymmetricKeyType !== 'rsa') {
    r.problem(`GITHUB_APP_PRIVATE_PEM_PATH: ${resolve(path)} holds a ${key.asymmetricKeyType ?? 'non-asymmetric'} key; a GitHub App key is RSA (RS256)`);
    return undefined;
  }
  return key;
}
