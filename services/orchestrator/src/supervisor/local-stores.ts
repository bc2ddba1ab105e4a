import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { pingPostgres, pingRedis } from '../dependency.probes.js';
import { systemEnv } from './child-env.js';
import type { ProcessSpec } from './process.supervisor.js';
import { handOver, type RunAs } from './run-as.js';
import { runAsIds } from './stack.processes.js';

// Redis and Postgres of the all-in-one container, with their data under DATA_DIR so a pod restart
// keeps keys' usage, limits and history.

export function localRedisUrl(port: number): string {
  return `redis://127.0.0.1:${port}`;
}

export function localPostgresUrl(port: number): string {
  return `postgres://postgres@127.0.0.1:${port}/postgres`;
}

export function localRedisSpec(dataDir: string, port: number, runAs?: RunAs): ProcessSpec {
  const dir = join(dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  if (runAs) handOver(runAs, [], [dir]);
  return {
    name: 'redis',
    command: 'redis-server',
    env: systemEnv(process.env),
    ...runAsIds(runAs),
    // noeviction: limits and queues must never be dropped silently; AOF keeps them across restarts.
    args: ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', ''],
    ready: () =>
      pingRedis(localRedisUrl(port)).then(
        () => true,
        () => false,
      ),
    stopGraceMs: 10_000,
  };
}

/** The directory of initdb and postgres: POSTGRES_BIN_DIR, the newest /usr/lib/postgresql/N/bin, or pg_config's. */
export function postgresBinDir(configured?: string): string {
  if (configured) return configured;
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(join(root, v, 'bin', 'postgres')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(root, versions[0], 'bin');
  }
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('postgres binaries not found: install PostgreSQL, or set POSTGRES_BIN_DIR (or DATABASE_URL)');
  }
}

/** Postgres refuses to run as root: as root, it runs as the `postgres` user. */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

export function localPostgresSpec(dataDir: string, port: number, binDir: string): ProcessSpec {
  const root = join(dataDir, 'postgres');
  const cluster = join(root, 'data');
  const user = postgresUser();
  mkdirSync(root, { recursive: true });
  if (user) chownSync(root, user.uid, user.gid);
  if (!existsSync(join(cluster, 'PG_VERSION'))) {
    try {
      execFileSync(join(binDir, 'initdb'), ['-D', cluster, '-U', 'postgres', '-A', 'trust', '--no-sync'], {
        stdio: ['ignore', 'ignore', 'pipe'],
        ...(user ?? {}),
      });
    } catch (err) {
      const said = String((err as { stderr?: Buffer }).stderr ?? '').trim();
      throw new Error(
        `initdb of the local Postgres in ${cluster} failed: ${said || (err as Error).message}` +
          (user ? ' (as root, every parent of DATA_DIR must be traversable by the postgres user)' : ''),
        { cause: err },
      );
    }
  }
  return {
    name: 'postgres',
    command: join(binDir, 'postgres'),
    // TCP only: a socket under DATA_DIR can pass the 107-byte socket path limit, or sit on a FUSE
    // volume that refuses sockets.
    args: ['-D', cluster, '-p', String(port), '-c', 'unix_socket_directories=', '-c', 'listen_addresses=127.0.0.1'],
    env: systemEnv(process.env),
    ...(user ?? {}),
    ready: () =>
      pingPostgres(localPostgresUrl(port)).then(
        () => true,
        () => false,
      ),
    // SIGINT is Postgres' fast shutdown: it does not wait for idle clients to leave.
    stopSignal: 'SIGINT',
    stopGraceMs: 30_000,
  };
}
