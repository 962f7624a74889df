import type { EnvReader } from './env.js';

/** Snyk's US broker server, the default of Snyk's images and of ours. */
export const DEFAULT_SERVER_URL = 'https://broker.snyk.io';

/** Where the client connects and listens, as configured (URLs checked, not yet normalised). */
export interface ClientEndpoints {
  token: string;
  serverUrlRaw: string;
  serverUrl?: URL;
  clientUrlRaw?: string;
  clientUrl?: URL;
  port: number;
  haMode: boolean;
  trustServerUrl: boolean;
  apiBaseRaw?: string;
  dispatcherRaw?: string;
}

export function readEndpoints(r: EnvReader): ClientEndpoints {
  const token = r.required('BROKER_TOKEN', 'the broker token from Snyk');
  const serverUrlRaw = r.string('BROKER_SERVER_URL', DEFAULT_SERVER_URL);
  const serverUrl = r.url('BROKER_SERVER_URL', serverUrlRaw);
  const clientUrlRaw = r.string('BROKER_CLIENT_URL');
  const clientUrl = r.url('BROKER_CLIENT_URL', clientUrlRaw);
  const port = r.port('PORT', 7341);
  const haMode = r.bool('BROKER_HA_MODE_ENABLED', false);
  const trustServerUrl = r.bool('BROKER_CLIENT_TRUST_SERVER_URL', false);
  const apiBaseRaw = r.string('API_BASE_URL');
  const dispatcherRaw = r.string('BROKER_DISPATCHER_BASE_URL');
  r.url('API_BASE_URL', apiBaseRaw);
  r.url('BROKER_DISPATCHER_BASE_URL', dispatcherRaw);
  return { token, serverUrlRaw, serverUrl, clientUrlRaw, clientUrl, port, haMode, trustServerUrl, apiBaseRaw, dispatcherRaw };
}

export function readClientId(r: EnvReader, generate: () => string): string {
  const clientId = r.string('BROKER_CLIENT_ID') ?? generate();
  if (!/^[A-Za-z0-9._~-]{1,128}$/.test(clientId)) r.problem('BROKER_CLIENT_ID must be 1-128 characters of letters, digits, ".", "_", "~" or "-"');
  return clientId;
}

export function readDispatcherPrefix(r: EnvReader): string {
  const prefix = r.raw('DISPATCHER_URL_PREFIX', 'SNYK_DISPATCHER_URL_PREFIX') ?? '/hidden/broker';
  if (!prefix.startsWith('/')) r.problem(`DISPATCHER_URL_PREFIX must start with "/", got ${JSON.stringify(prefix)}`);
  return prefix;
}

/** The endpoint URLs without trailing slashes; only once every URL has been checked (the reader is done). */
export function normalisedEndpoints(e: ClientEndpoints, prefix: string) {
  return {
    serverUrl: e.serverUrl!.toString().replace(/\/+$/, ''),
    clientUrl: e.clientUrl ? e.clientUrlRaw!.replace(/\/+$/, '') : undefined,
    dispatcherBaseUrl: (e.apiBaseRaw ?? e.dispatcherRaw ?? (/\/\/broker2?\./.test(e.serverUrlRaw) ? e.serverUrlRaw.replace(/\/\/broker2?\./, '//api.') : 'https://api.snyk.io')).replace(/\/+$/, ''),
    dispatcherUrlPrefix: prefix.replace(/\/+$/, ''),
    apiBaseUrl: e.apiBaseRaw?.replace(/\/+$/, ''),
  };
}
