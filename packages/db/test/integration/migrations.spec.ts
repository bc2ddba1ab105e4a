import assert from 'node:assert/strict';
import pg from 'pg';
import { migrateUp, pendingMigrations } from '@gguf-gateway/db';
import { createTestDatabase, type TestDatabase } from '@gguf-gateway/testkit';

describe('database migrations', () => {
  let db: TestDatabase;

  before(async () => {
    db = await createTestDatabase();
  });

  after(async () => {
    await db?.drop();
  });

  it('creates every table on an empty database, then has nothing left to apply', async () => {
    assert.ok((await pendingMigrations(db.url)).length > 0);
    const applied = await migrateUp(db.url);
    assert.ok(applied.length > 0);
    assert.deepEqual(await pendingMigrations(db.url), []);
    assert.deepEqual(await migrateUp(db.url), []);

    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ table_name: string }>(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
      );
      const tables = rows.map((r) => r.table_name);
      for (const table of ['models', 'pull_jobs', 'usage_daily', 'usage_events'])
        assert.ok(tables.includes(table), table);
    } finally {
      await client.end();
    }
  });

  it('runs safely from two processes at once (the orchestrator and the metrics service)', async () => {
    const fresh = await createTestDatabase();
    try {
      const results = await Promise.allSettled([migrateUp(fresh.url), migrateUp(fresh.url)]);
      assert.ok(results.some((r) => r.status === 'fulfilled'));
      assert.deepEqual(await pendingMigrations(fresh.url), []);
    } finally {
      await fresh.drop();
    }
  });
});
