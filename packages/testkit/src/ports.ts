import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

// Ports handed to servers a test starts come from below the kernel's ephemeral range. A port taken
// from that range (listen on 0, then release) can be given to an outgoing connection as its local
// port before the server binds it, and the server then fails with "address in use".
const LOWEST_PORT = 10_000;
const EPHEMERAL_START = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32_768;
  } catch {
    return 32_768;
  }
})();
const handedOut = new Set<number>();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port nothing listens on, outside the ephemeral range, never handed out twice in this process. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOWEST_PORT + Math.floor(Math.random() * (EPHEMERAL_START - LOWEST_PORT));
    if (handedOut.has(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port found between ${LOWEST_PORT} and ${EPHEMERAL_START}`);
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined>,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== null && value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const reason = lastError instanceof Error ? `: ${lastError.message}` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${reason}`);
}

/** A free port for each variable name, as the environment strings a process is given. */
export async function freePorts(names: readonly string[]): Promise<Record<string, string>> {
  const ports: Record<string, string> = {};
  for (const name of names) ports[name] = String(await freePort());
  return ports;
}

/** Every port the orchestrator's `supervise` listens on or hands to a process it starts. */
export const SUPERVISED_PORT_VARIABLES = [
  'PORT',
  'PORT_HEALTH',
  'GATEWAY_PORT',
  'GATEWAY_HEALTH_PORT',
  'AUTH_PORT',
  'METRICS_PORT',
  'WORKER_PORT',
  'INFERENCE_PORT',
  'LOCAL_REDIS_PORT',
  'LOCAL_POSTGRES_PORT',
] as const;
