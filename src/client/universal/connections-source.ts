import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Egress } from '../../http/egress.js';
import { describeError } from '../../http/errors.js';
import { parseJsonOrUndefined } from '../../json.js';
import type { PlatformAuth } from '../platform-auth.js';

/**
 * One connection of the deployment as Snyk describes it: keys upper-cased as Snyk's client does,
 * values literal or `${ENV}` credential references (resolved later, per connection).
 */
export interface DeploymentConnection {
  /** The connection's name: what a sync reconciles by. */
  name: string;
  id: string;
  type: string;
  /** The broker token of its tunnels; null when no organisation uses it yet (no tunnels). */
  identifier: string | null;
  values: Record<string, string>;
  /** Context id → its overriding values (upper-cased keys). */
  contexts: Record<string, Record<string, string>>;
}

/** Why the connections could not be read; `fatal`: retrying will not help (no such deployment, a broken file). */
export class ConnectionsError extends Error {
  readonly code = 'CONNECTIONS_UNAVAILABLE';
  constructor(
    message: string,
    readonly fatal = false,
  ) {
    super(message);
    this.name = 'ConnectionsError';
  }
}

export interface ConnectionsSource {
  /** Where they come from, for log lines. */
  readonly description: string;
  list(): Promise<DeploymentConnection[]>;
}

function upperCased(values: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!values || typeof values !== 'object') return out;
  for (const [k, v] of Object.entries(values as Record<string, unknown>)) {
    if (typeof v === 'string') out[k.toUpperCase()] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[k.toUpperCase()] = String(v);
  }
  return out;
}


/** Reads Snyk's JSON:API list (`data[]` of broker_connection, `relationships[]` of broker_context) into connections. */
export function parseConnectionsList(body: unknown): DeploymentConnection[] {
  const data = (body as { data?: unknown } | undefined)?.data;
  if (!Array.isArray(data)) throw new ConnectionsError("Snyk's connections answer has no data array");
  const out: DeploymentConnection[] = [];
  for (const item of data as Array<Record<string, unknown>>) {
    const attrs = (item?.attributes ?? {}) as Record<string, unknown>;
    const configuration = (attrs.configuration ?? {}) as Record<string, unknown>;
    if (typeof attrs.name !== 'string' || typeof configuration.type !== 'string') continue;
    const contexts: Record<string, Record<string, string>> = {};
    // Snyk's client iterates relationships with for...of: an array, or nothing.
    for (const rel of Array.isArray(item.relationships) ? (item.relationships as Array<Record<string, unknown>>) : []) {
      if (typeof rel?.id !== 'string') continue;
      contexts[rel.id] = upperCased((rel.attributes as Record<string, unknown> | undefined)?.context);
    }
    out.push({
      name: attrs.name,
      id: typeof item.id === 'string' ? item.id : attrs.name,
      type: configuration.type,
      identifier: typeof attrs.identifier === 'string' && attrs.identifier ? attrs.identifier : null,
      values: { ...upperCased(configuration.default), ...upperCased(configuration.required) },
      contexts,
    });
  }
  return out;
}

export interface RemoteSourceOptions {
  egress: Egress;
  auth: PlatformAuth;
  apiBaseUrl: string;
  deploymentId: string;
  apiVersion: string;
  clientId: string;
  wireVersion: string;
  timeoutMs?: number;
}

/** `GET {API}/hidden/brokers/deployments/{id}/connections?version=`: a 401 drops the token and is retried once. */
export function remoteConnections(o: RemoteSourceOptions): ConnectionsSource {
  const url = `${o.apiBaseUrl}/hidden/brokers/deployments/${encodeURIComponent(o.deploymentId)}/connections?version=${encodeURIComponent(o.apiVersion)}`;
  async function once(): Promise<{ status: number; text: string }> {
    const authorization = await o.auth.authorization();
    let res;
    try {
      res = await o.egress.request(url, {
        method: 'GET',
        headers: {
          'content-type': 'application/vnd.api+json',
          authorization,
          'x-broker-client-id': o.clientId,
          'x-broker-client-version': o.wireVersion,
          'user-agent': `Snyk Broker Client ${o.wireVersion}`,
          'snyk-request-id': randomUUID(),
        },
        signal: AbortSignal.timeout(o.timeoutMs ?? 15_000),
      });
    } catch (err) {
      throw new ConnectionsError(`Snyk's API ${o.apiBaseUrl} is unreachable: ${describeError(err)}`);
    }
    return { status: res.statusCode, text: await res.body.text() };
  }
  return {
    description: `${o.apiBaseUrl} deployment ${o.deploymentId}`,
    async list() {
      let answer = await once();
      if (answer.status === 401) {
        o.auth.invalidate();
        answer = await once();
      }
      if (answer.status === 404) throw new ConnectionsError(`No deployment ${o.deploymentId} found at ${o.apiBaseUrl}: check DEPLOYMENT_ID (create a deployment first)`, true);
      if (answer.status !== 200) {
        const body = parseJsonOrUndefined(answer.text) as { error?: unknown; error_description?: unknown } | undefined;
        const why = typeof body?.error === 'string' ? `: ${body.error}${typeof body.error_description === 'string' ? `: ${body.error_description}` : ''}` : '';
        throw new ConnectionsError(`Snyk's API answered ${answer.status} to the connections list${why}`);
      }
      return parseConnectionsList(parseJsonOrUndefined(answer.text));
    },
  };
}

/**
 * SKIP_REMOTE_CONFIG: the `CONNECTIONS` block of a local `config.<SERVICE_ENV>.json`, as Snyk's
 * `config.universaltest.json` writes it: `{name: {type, id, identifier, KEY: value, contexts?}}`.
 */
export function fileConnections(path: string): ConnectionsSource {
  return {
    description: path,
    async list() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        throw new ConnectionsError(`SKIP_REMOTE_CONFIG: cannot read the connections file ${path}: ${describeError(err)}`, true);
      }
      const doc = parseJsonOrUndefined(text) as { CONNECTIONS?: unknown } | undefined;
      if (!doc || typeof doc.CONNECTIONS !== 'object' || doc.CONNECTIONS === null) throw new ConnectionsError(`SKIP_REMOTE_CONFIG: ${path} has no CONNECTIONS object`, true);
      const out: DeploymentConnection[] = [];
      for (const [name, raw] of Object.entries(doc.CONNECTIONS as Record<string, Record<string, unknown>>)) {
        // friendlyName: Snyk's client writes the name into each entry of the CONNECTIONS it saves; metadata, not a value.
        const { type, id, identifier, contexts, ...rest } = raw ?? {};
        delete rest.friendlyName;
        if (typeof type !== 'string') throw new ConnectionsError(`SKIP_REMOTE_CONFIG: connection ${JSON.stringify(name)} in ${path} has no type`, true);
        const ctx: Record<string, Record<string, string>> = {};
        for (const [cid, values] of Object.entries((contexts ?? {}) as Record<string, unknown>)) ctx[cid] = upperCased(values);
        out.push({ name, id: typeof id === 'string' ? id : name, type, identifier: typeof identifier === 'string' && identifier ? identifier : null, values: upperCased(rest), contexts: ctx });
      }
      return out;
    },
  };
}
