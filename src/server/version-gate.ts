export type GateVerdict = { kind: 'accept' } | { kind: 'warn'; message: string } | { kind: 'refuse'; message: string };

function parse(version: string): [number, number, number] | undefined {
  // Semver core, ignoring pre-release/build metadata (our client sends 5.22.14+ha-broker.x).
  const m = /^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/.exec(version.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

function lessThan(a: [number, number, number], b: [number, number, number]): boolean {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

/**
 * The real server's version gate (protocol.md §2.3): `local` and our own client (capability
 * `ha-broker/1`) pass; bare-token identifies (`pre-4.27`) are refused; a version we cannot
 * read is let in (refusing it would lock out a client we cannot judge) and logged by the caller.
 */
export function checkClientVersion(version: string, capabilities: string[], minimalSupported: string, minimalRecommended: string): GateVerdict | { kind: 'unreadable' } {
  if (version === 'local' || capabilities.includes('ha-broker/1')) return { kind: 'accept' };
  const supported = parse(minimalSupported)!;
  const recommended = parse(minimalRecommended)!;
  if (version === 'pre-4.27') {
    return { kind: 'refuse', message: `Broker client version is outdated. Minimal version: ${minimalSupported}. Please upgrade to latest version.` };
  }
  const v = parse(version);
  if (!v) return { kind: 'unreadable' };
  if (lessThan(v, supported)) {
    return { kind: 'refuse', message: `Broker client version is outdated. Minimal version: ${minimalSupported}. Please upgrade to latest version.` };
  }
  if (lessThan(v, recommended)) {
    return { kind: 'warn', message: `Broker client version is deprecated. Minimal version: ${minimalRecommended}. Please upgrade to latest version.` };
  }
  return { kind: 'accept' };
}
