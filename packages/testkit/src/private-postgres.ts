import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, chownSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, waitFor } from './ports.js';
import { startProcess, stopProcess, killProcess, type ManagedProcess } from './processes.js';

function postgresBinDir(): string {
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('pg_config not found: install the PostgreSQL server (Debian: apt-get install postgresql)');
  }
}

/** Postgres refuses to run as root: run it as the `postgres` user when we are root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
  return { uid, gid };
}

/**
 * A Postgres cluster of the test's own (initdb in a temp dir, a free port), for tests that stop
 * Postgres while traffic flows. fsync is off: it is thrown away afterwards.
 */
export class PrivatePostgres {
  private proc: ManagedProcess | null = null;
  private constructor(
    readonly port: number,
    private readonly dataDir: string,
    private readonly bin: string,
    private readonly user: { uid: number; gid: number } | undefined,
  ) {}

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  static async start(): Promise<PrivatePostgres> {
    const bin = postgresBinDir();
    const user = runAs();
    const root = mkdtempSync(join(tmpdir(), 'gg-pg-'));
    if (user) chownSync(root, user.uid, user.gid);
    const dataDir = join(root, 'data');
    execFileSync(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync'], {
      stdio: 'ignore',
      ...(user ?? {}),
    });
    const server = new PrivatePostgres(await freePort(), dataDir, bin, user);
    await server.start();
    return server;
  }

  async start(): Promise<void> {
    const args = [
      '-D',
      this.dataDir,
      '-p',
      String(this.port),
      '-k',
      this.dataDir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-F',
    ];
    this.proc = startProcess(join(this.bin, 'postgres'), args, this.user ?? {});
    const proc = this.proc;
    await waitFor(`postgres on port ${this.port}`, async () => {
      if (proc.child.exitCode !== null) throw new Error(`postgres exited: ${proc.output()}`);
      const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 1000 });
      try {
        await client.connect();
        await client.query('SELECT 1');
        return true;
      } finally {
        await client.end().catch(() => undefined);
      }
    });
  }

  /** Fast shutdown: like an operator stopping the database. */
  async stop(): Promise<void> {
    if (this.proc) await stopProcess(this.proc, 10_000);
  }

  async kill(): Promise<void> {
    if (this.proc) await killProcess(this.proc);
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(join(this.dataDir, '..'), { recursive: true, force: true });
  }
}
