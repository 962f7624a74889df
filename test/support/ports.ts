import { createServer } from 'node:net';

// Ports below Linux's ephemeral range (32768–60999 by default). A port the kernel hands out for
// bind(0) comes from that range, and between our release and the child's listen() any outgoing
// connection on the machine may take it as its source port (the load tests open thousands):
// the child then dies with EADDRINUSE. Below the range only another listener can take it.
const LOW = 20_000;
const HIGH = 32_767;
/** Ports this process handed out already: never twice. */
const handedOut = new Set<number>();

function tryListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A free TCP port on 127.0.0.1 (bound then released; good enough for test processes). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW + 1));
    if (handedOut.has(port)) continue;
    if (await tryListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port between ${LOW} and ${HIGH} after 200 tries`);
}
