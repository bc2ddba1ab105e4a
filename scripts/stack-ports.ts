// Which of the stack's ports are taken, and by what: checked before anything starts, so a second
// `npm run stack` beside a running one says so instead of printing another stack's URL.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    // No host: the dual-stack wildcard, which collides with a holder on any address.
    server.listen(port, () => server.close(() => resolve(true)));
  });
}

/** The socket inodes listening on a port, from /proc/net/tcp and tcp6 (Linux). */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const [, local, , state] = fields;
      // 0A: LISTEN.
      if (state === '0A' && local && parseInt(local.split(':')[1] ?? '', 16) === port) inodes.add(fields[9]!);
    }
  }
  return inodes;
}

/** "pid 1234 (node services/gateway/dist/main.js)", or what can be said without seeing its process. */
export function portHolder(port: number): string {
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return 'a process this user cannot see';
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode && inodes.has(inode)) {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
        return `pid ${pid} (${cmdline.slice(0, 160)})`;
      }
    }
  }
  return 'a process this user cannot see';
}

/** Each taken port among `ports` (variable name -> port) as "VARIABLE=port is held by ...". */
export async function takenPorts(ports: Record<string, number>): Promise<string[]> {
  const taken: string[] = [];
  for (const [name, port] of Object.entries(ports)) {
    if (!(await bindable(port))) taken.push(`${name}=${port} is held by ${portHolder(port)}`);
  }
  return taken;
}
