/**
 * One broker client *process* among those sharing a BROKER_CLIENT_ID. During a rolling update
 * (Kubernetes maxSurge 1) the old pod and its replacement run side by side with one client id;
 * the instance id lets the dispatcher apply a release or a tunnel's disconnect to the process
 * that made it, not to its twin. All of it is our extension: Snyk's dispatcher ignores the
 * header, Snyk's server the metadata key, and without them everything works per client id.
 */

/** Request header on the allocation POST and DELETE (protocol.md §6.2). */
export const CLIENT_INSTANCE_HEADER = 'x-broker-client-instance';
/** Key in the tunnel's identify metadata. */
export const CLIENT_INSTANCE_METADATA = 'instanceId';
/** Query parameter of the server's connection reports to the dispatcher (protocol.md §6.4). */
export const CLIENT_INSTANCE_QUERY = 'broker_client_instance';

const INSTANCE_ID = /^[A-Za-z0-9._~:-]{1,128}$/;

/** The instance id when `value` is a usable one, else undefined (an odd value never fails a call). */
export function parseClientInstance(value: unknown): string | undefined {
  const v: unknown = Array.isArray(value) ? (value as unknown[])[0] : value;
  return typeof v === 'string' && INSTANCE_ID.test(v) ? v : undefined;
}
