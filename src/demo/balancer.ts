import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface Balancer {
  readonly port: number;
  setBackends(ports: number[]): void;
  close(): Promise<void>;
}

/**
 * A stand-in for a Kubernetes Service in front of several broker servers: each new TCP
 * connection goes to the next backend in turn; a backend that refuses is skipped, as
 * kube-proxy skips a pod that is not ready. No affinity, on purpose.
 */
export async function startBalancer(backends: number[], port = 0, host = '127.0.0.1'): Promise<Balancer> {
  let list = [...backends];
  let next = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.pause();
    const tryBackend = (attempt: number) => {
      if (list.length === 0 || attempt >= list.length) {
        client.destroy();
        return;
      }
      const target = list[next++ % list.length];
      const upstream = connect(target, host);
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        client.on('close', () => upstream.destroy());
      });
      upstream.once('error', () => {
        if (!connected) tryBackend(attempt + 1);
      });
    };
    tryBackend(0);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    setBackends(ports) {
      list = [...ports];
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
