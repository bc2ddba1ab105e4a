import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrateUp } from '@gguf-gateway/db';
import { testSettings } from './settings.js';

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>, url = testSettings.TEST_POSTGRES_URL): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * A database of its own for one test run, dropped (connections and all) afterwards; with
 * `migrate`, the project's schema is applied to it.
 */
export async function createTestDatabase(
  options: { migrate?: boolean; serverUrl?: string } = {},
): Promise<TestDatabase> {
  const serverUrl = options.serverUrl ?? testSettings.TEST_POSTGRES_URL;
  const name = `gg_test_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`), serverUrl);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  if (options.migrate) await migrateUp(url.toString());
  return {
    name,
    url: url.toString(),
    drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`), serverUrl).then(() => undefined),
  };
}
