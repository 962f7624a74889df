import type { Socket as EngineSocket } from 'engine.io';
import { socketUnderWebSocket, type Corkable } from '../http/write-batch.js';
import type { TunnelTransport } from './connection.js';

/** engine.io's websocket transport keeps the `ws` socket, which keeps the net socket. */
export function netSocketOf(socket: EngineSocket): Corkable | undefined {
  const transport = socket.transport as unknown as { name?: string; socket?: unknown };
  return transport.name === 'websocket' ? socketUnderWebSocket(transport.socket) : undefined;
}

/** A tunnel's transport over an engine.io socket (websocket or long-polling). */
export function engineTransport(socket: EngineSocket): TunnelTransport {
  return {
    send(text, onFlushed) {
      socket.send(text, {}, onFlushed ? () => onFlushed() : undefined);
    },
    close(code, reason) {
      const transport = socket.transport as unknown as { name?: string; socket?: { close(code?: number, reason?: string): void } };
      if (code !== undefined && transport.name === 'websocket' && transport.socket) {
        try {
          // A close code tells our client why (4001 server-draining); engine.io would send a plain 1000/1005.
          transport.socket.close(code, reason);
          return;
        } catch {
          // fall back to engine.io's close
        }
      }
      socket.close();
    },
    ping() {
      // engine.io v4 only (in v3 the client pings); a live client answers with a pong packet.
      const s = socket as unknown as { protocol?: number; readyState?: string; sendPacket?: (type: string) => void };
      if (s.protocol !== 4 || s.readyState !== 'open' || typeof s.sendPacket !== 'function') return false;
      s.sendPacket('ping');
      return true;
    },
  };
}
