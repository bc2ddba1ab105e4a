import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import type { Logger } from '@gguf-gateway/shared';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));
export const MIGRATIONS_TABLE = 'pgmigrations';

/**
 * Applies every pending migration in one transaction, under node-pg-migrate's advisory lock, so the
 * orchestrator and the metrics service may both call it at start. Returns the names applied.
 */
export async function migrateUp(databaseUrl: string, logger?: Logger): Promise<string[]> {
  const applied = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: MIGRATIONS_TABLE,
    singleTransaction: true,
    checkOrder: true,
    log: (message: string) => logger?.debug({ migration: message }, 'migration'),
  });
  const names = applied.map((m) => m.name);
  if (names.length > 0) logger?.info({ applied: names }, 'migrations applied');
  return names;
}

/** Names of the migrations not yet applied (an empty list means the schema is current). */
export async function pendingMigrations(databaseUrl: string): Promise<string[]> {
  const pending = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: MIGRATIONS_TABLE,
    dryRun: true,
    log: () => undefined,
  });
  return pending.map((m) => m.name);
}
