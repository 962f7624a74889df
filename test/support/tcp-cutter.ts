// A TCP proxy for fault tests: listens on 127.0.0.1, pipes every connection to a target, and
// cuts connections on demand (all, one, or the first whose upstream byte count passes a mark),
// the stand-in for a tunnel or a corporate proxy dropping connections mid-flight.
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface CutterConnection {
  readonly id: number;
  readonly client: Socket;
  readonly upstream: Socket;
  /** Bytes from the connecting side to the target so far. */
  bytesUp: number;
  /** Bytes from the target back to the connecting side so far. */
  bytesDown: number;
}

export interface TcpCutter {
  readonly port: number;
  readonly url: string;
  /** Connections currently open. */
  readonly open: ReadonlySet<CutterConnection>;
  /** Connections accepted since start. */
  readonly accepted: number;
  /** Connections cut by this proxy since start. */
  readonly cut: number;
  /** Destroys every open connection at once (both sides, RST where the OS allows). */
  cutAll(): number;
  /** Destroys one connection. */
  cutOne(conn: CutterConnection): void;
  /**
   * Arms a one-shot cut: the first connection whose `direction` byte count passes `bytes` is
   * destroyed on the spot (mid-stream). Resolves with that connection once cut.
   */
  cutAfter(bytes: number, direction?: 'up' | 'down', filter?: (c: CutterConnection) => boolean): Promise<CutterConnection>;
  /** While refusing, new connections are accepted and closed at once. */
  refuse(on: boolean): void;
  close(): Promise<void>;
}

export async function startTcpCutter(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpCutter> {
  const open = new Set<CutterConnection>();
  let accepted = 0;
  let cut = 0;
  let nextId = 1;
  let refusing = false;
  let armed: { bytes: number; direction: 'up' | 'down'; filter: (c: CutterConnection) => boolean; resolve: (c: CutterConnection) => void } | undefined;

  const kill = (conn: CutterConnection) => {
    if (!open.has(conn)) return;
    open.delete(conn);
    cut++;
    // resetAndDestroy sends RST (a hard cut, as a dropping proxy or a dead NAT entry does).
    conn.client.resetAndDestroy();
    conn.upstream.resetAndDestroy();
  };
  const check = (conn: CutterConnection) => {
    if (!armed) return;
    const count = armed.direction === 'up' ? conn.bytesUp : conn.bytesDown;
    if (count >= armed.bytes && armed.filter(conn)) {
      const { resolve } = armed;
      armed = undefined;
      kill(conn);
      resolve(conn);
    }
  };

  const server: Server = createServer((client) => {
    accepted++;
    if (refusing) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    const conn: CutterConnection = { id: nextId++, client, upstream, bytesUp: 0, bytesDown: 0 };
    open.add(conn);
    const end = () => {
      open.delete(conn);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
    // Manual piping, so a count can trigger a cut between two chunks.
    client.on('data', (d: Buffer) => {
      conn.bytesUp += d.length;
      if (!upstream.write(d)) client.pause();
      check(conn);
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (d: Buffer) => {
      conn.bytesDown += d.length;
      if (!client.write(d)) upstream.pause();
      check(conn);
    });
    client.on('drain', () => upstream.resume());
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    open,
    get accepted() {
      return accepted;
    },
    get cut() {
      return cut;
    },
    cutAll() {
      const all = [...open];
      for (const c of all) kill(c);
      return all.length;
    },
    cutOne: kill,
    cutAfter(bytes, direction = 'up', filter = () => true) {
      return new Promise((resolve) => {
        armed = { bytes, direction, filter, resolve };
        for (const c of [...open]) check(c);
      });
    },
    refuse(on) {
      refusing = on;
    },
    close() {
      armed = undefined;
      for (const c of [...open]) {
        c.client.destroy();
        c.upstream.destroy();
      }
      open.clear();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
