import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, waitFor } from './ports.js';
import { killProcess, startProcess, stopProcess, type ManagedProcess } from './processes.js';

/**
 * A redis-server of the test's own on a free port, for tests that stop or kill Redis: the shared
 * one is never touched. It can be killed and started again on the same port.
 */
export class PrivateRedis {
  private proc: ManagedProcess | null = null;
  /** With `persistent`, an append-only file fsynced on every write: a killed one restarts with its data, as compose's does. */
  private constructor(
    readonly port: number,
    private readonly dataDir: string | null,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(options: { persistent?: boolean } = {}): Promise<PrivateRedis> {
    const dataDir = options.persistent ? mkdtempSync(join(tmpdir(), 'gg-private-redis-')) : null;
    const redis = new PrivateRedis(await freePort(), dataDir);
    await redis.start();
    return redis;
  }

  async start(): Promise<void> {
    const persistence = this.dataDir
      ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dataDir]
      : ['--appendonly', 'no'];
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence];
    // DEBUG SLEEP (hang) needs the debug command, from local clients only.
    args.push('--enable-debug-command', 'local');
    this.proc = startProcess('redis-server', args);
    const proc = this.proc;
    await waitFor(`redis-server on port ${this.port}`, async () => {
      if (proc.child.exitCode !== null) throw new Error(`redis-server exited: ${proc.output()}`);
      const client = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      client.on('error', () => undefined); // a refused probe is expected while it starts
      try {
        await client.connect();
        return (await client.ping()) === 'PONG';
      } finally {
        client.disconnect();
      }
    });
  }

  /**
   * Hangs the server for `seconds` (DEBUG SLEEP: up, connected, not answering), as a Redis stuck on
   * a slow disk or a long command does; resolves once it answers again.
   */
  async hang(seconds: number): Promise<void> {
    const client = new Redis(this.url, { maxRetriesPerRequest: 0 });
    try {
      await client.call('DEBUG', 'SLEEP', String(seconds));
    } finally {
      client.disconnect();
    }
  }

  async kill(): Promise<void> {
    if (this.proc) await killProcess(this.proc);
  }

  async stop(): Promise<void> {
    if (this.proc) await stopProcess(this.proc);
  }
}
