import type { Logger } from '../observability/logger.js';
import type { LivenessView } from './liveness.js';
import type { DispatcherStore } from './store.js';

export interface ServerAttributes {
  peerUrl?: string;
  publicUrl?: string;
  healthCheckLink?: string;
  openTunnels?: number;
}

/**
 * The registry of broker servers: what they say of themselves (registration, stopping, any
 * report) and what the health probes find. Liveness is judged from these records later, by
 * LivenessView.
 */
export class ServerRegistry {
  constructor(
    readonly store: DispatcherStore,
    readonly clock: () => number,
    readonly log: Logger,
  ) {}

  /**
   * server-starting, or a periodic re-registration. `openTunnels` > 0 (ours, optional) says the
   * server already holds tunnels: if we did not know it, it was running before us. Resolves
   * true when this store had no registration of it (we restarted empty, or it is new).
   */
  async register(id: string, attrs: ServerAttributes): Promise<boolean> {
    const now = this.clock();
    const known = (await this.store.getServers()).find((s) => s.id === id)?.registeredAt !== undefined;
    const discoveredAt = (attrs.openTunnels ?? 0) > 0 ? now : 0;
    // A public URL the operator removed is forgotten at the next registration.
    const unset: Array<'stoppingSince' | 'downSince' | 'publicUrl'> = attrs.publicUrl ? ['stoppingSince', 'downSince'] : ['stoppingSince', 'downSince', 'publicUrl'];
    await this.store.patchServer(id, { lastSeen: now, lastReport: now, registeredAt: now, peerUrl: attrs.peerUrl, publicUrl: attrs.publicUrl, healthCheckLink: attrs.healthCheckLink }, unset, { firstSeen: now, discoveredAt });
    this.log.info({ serverId: id, peerUrl: attrs.peerUrl, publicUrl: attrs.publicUrl }, 'server registered');
    return !known;
  }

  async stop(id: string): Promise<void> {
    const now = this.clock();
    await this.store.patchServer(id, { lastReport: now }, [], { stoppingSince: now, firstSeen: now, lastSeen: now, discoveredAt: now });
    this.log.info({ serverId: id }, 'server stopping: no new clients');
  }

  /** Activity from a server (any connection call) keeps it in placement; unknown ids register implicitly. */
  async touch(id: string, peerUrl?: string): Promise<void> {
    const now = this.clock();
    await this.store.patchServer(id, { lastSeen: now, lastReport: now, ...(peerUrl ? { peerUrl } : {}) }, [], { firstSeen: now, discoveredAt: now });
  }

  /** Health probe outcome (only servers that reported a peer URL are probed). */
  async probeResult(id: string, ok: boolean): Promise<void> {
    const now = this.clock();
    if (ok) {
      await this.store.patchServer(id, { lastSeen: now }, ['downSince']);
      return;
    }
    const s = (await this.store.getServers()).find((x) => x.id === id);
    if (!s) return;
    // Keep the first failure time, unless the server reported since (it was alive then): a
    // failure now starts a new outage, so a later crash is noticed at once.
    if (s.downSince === undefined || (s.lastReport ?? -Infinity) > s.downSince) await this.store.patchServer(id, { downSince: now });
  }

  /** Forgets servers silent for longer than their TTL plus the connect grace. */
  async forgetLapsed(v: LivenessView): Promise<void> {
    for (const s of v.servers.values()) {
      if (v.now - s.lastSeen > v.cfg.serverTtlMs + v.cfg.connectGraceMs) {
        await this.store.deleteServer(s.id);
        this.log.info({ serverId: s.id }, 'server forgotten (no activity)');
      }
    }
  }
}
