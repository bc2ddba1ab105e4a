import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import pg from 'pg';
import { testSettings } from './settings.js';

/**
 * Fails with a message that says what to start when Redis or Postgres is not there: the suite
 * never skips itself green.
 */
export async function assertSharedServicesReachable(): Promise<void> {
  const problems: string[] = [];
  const redis = new Redis(testSettings.TEST_REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined); // reported below, with what to start
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    problems.push(
      `Redis is not reachable at ${testSettings.TEST_REDIS_URL} (${(err as Error).message}). ` +
        'Start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no ' +
        '(or set TEST_REDIS_URL).',
    );
  } finally {
    redis.disconnect();
  }
  const client = new pg.Client({ connectionString: testSettings.TEST_POSTGRES_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    problems.push(
      `Postgres is not reachable at ${testSettings.TEST_POSTGRES_URL} (${(err as Error).message}). ` +
        'Start it: pg_ctlcluster $(ls /etc/postgresql) main start (or set TEST_POSTGRES_URL).',
    );
  } finally {
    await client.end().catch(() => undefined);
  }
  if (problems.length > 0) throw new Error(`The tests need real services:\n- ${problems.join('\n- ')}`);
}

/** Programs the suite runs for real, and the Debian package of each (scripts/install-test-tools installs them). */
const TOOLS: Record<string, string> = {
  'redis-server': 'redis-server',
  pg_config: 'postgresql',
  prometheus: 'prometheus',
  promtool: 'prometheus',
  'docker-compose': 'docker-compose',
  curl: 'curl',
  openssl: 'openssl',
};

function onPath(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Fails with the packages to install when a program the tests run is missing. */
export function assertTestToolsInstalled(): void {
  const missing = Object.keys(TOOLS).filter((command) => !onPath(command));
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map((command) => TOOLS[command]))].join(' ');
  throw new Error(
    `The tests run these programs for real and cannot find them: ${missing.join(', ')}. ` +
      `Install them with scripts/install-test-tools (Debian: apt-get install ${packages}).`,
  );
}

/**
 * AUTH_INTERNAL_TOKEN of every auth instance the tests start, and what their gateways present: auth
 * answers its decision endpoints only to a caller holding it.
 */
export const TEST_AUTH_INTERNAL_TOKEN = 'test-auth-internal-token-0123456789';
