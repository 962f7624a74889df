import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/**
 * Socket inodes from /proc/net/tcp{,6} (Linux) whose row passes `keep`. Row fields:
 * [1] local address:port (hex), [2] remote, [3] state (0A = listening), [9] inode.
 */
export function tcpSocketInodes(keep: (row: { localPort: number; remotePort: number; state: string }) => boolean): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const row = { localPort: parseInt(f[1]!.split(':')[1]!, 16), remotePort: parseInt(f[2]!.split(':')[1]!, 16), state: f[3]! };
      if (keep(row)) inodes.add(f[9]!);
    }
  }
  return inodes;
}

/** The first pid among `pids` holding one of the socket `inodes` open (via /proc/<pid>/fd). */
export function pidHoldingSocket(inodes: Set<string>, pids: Iterable<number>): number | undefined {
  if (inodes.size === 0) return undefined;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1]!)) return pid;
      } catch {
        // fd closed meanwhile
      }
    }
  }
  return undefined;
}

/** Every pid on the machine. */
export function allPids(): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
}
