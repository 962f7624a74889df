/** The part of a net.Socket a batcher needs. */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

/** The net socket under a `ws` WebSocket (ws keeps it as `_socket`), once it is open. */
export function socketUnderWebSocket(ws: unknown): Corkable | undefined {
  return (ws as { _socket?: Corkable | null } | undefined)?._socket ?? undefined;
}

/**
 * Holds a socket's writes until the end of this event-loop turn's I/O phase (setImmediate
 * runs after every ready socket of the turn was read), so the frames written meanwhile leave
 * in one writev instead of one syscall each. Under load a tunnel carries several frames per
 * turn (one per request that arrived on the platform side); alone, a frame waits only for the
 * rest of the turn. Each socket is corked once per turn and always uncorked: `end()` flushes a
 * corked socket too, and a destroyed one has nothing left to send.
 */
export function createWriteBatcher(): (socket: Corkable | undefined) => void {
  const held = new WeakSet<Corkable>();
  return (socket) => {
    if (!socket || held.has(socket) || typeof socket.cork !== 'function') return;
    held.add(socket);
    socket.cork();
    setImmediate(() => {
      held.delete(socket);
      socket.uncork();
    });
  };
}
