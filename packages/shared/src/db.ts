import pg from 'pg';

export type { Pool, PoolClient } from 'pg';

// Postgres BIGINT (int8) columns hold token counts and byte sizes well below 2^53: read them as numbers.
pg.types.setTypeParser(20, (value) => Number(value));

export function createPgPool(connectionString: string, max = 10): pg.Pool {
  const pool = new pg.Pool({ connectionString, max, connectionTimeoutMillis: 5000, idleTimeoutMillis: 30_000 });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  return pool;
}

/** Readiness check: null when Postgres answers. */
export async function postgresProblem(pool: pg.Pool): Promise<string | null> {
  try {
    await pool.query('SELECT 1');
    return null;
  } catch (err) {
    return `postgres: ${(err as Error).message}`;
  }
}
