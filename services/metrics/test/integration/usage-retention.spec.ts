import assert from 'node:assert/strict';
import { createLogger, createPgPool, type Pool } from '@gguf-gateway/shared';
import { createTestDatabase, LogCapture, type TestDatabase } from '@gguf-gateway/testkit';
import { UsageEventsRepository } from '../../src/usage-events.repository.js';
import { UsageRetention } from '../../src/usage-retention.service.js';

describe('usage retention', () => {
  let db: TestDatabase;
  let pool: Pool;

  before(async () => {
    db = await createTestDatabase({ migrate: true });
    pool = createPgPool(db.url);
  });

  after(async () => {
    await pool.end();
    await db.drop();
  });

  it('deletes raw events past the retention in batches and keeps recent events and the daily rollup', async () => {
    await pool.query(`
      INSERT INTO usage_events (request_id, ts, key_id, model, backend, route, status, stream, duration_ms, usage_source)
      SELECT 'r' || i, now() - ((CASE WHEN i <= 2500 THEN 91 ELSE 89 END) || ' days')::interval,
        'k', 'm', 'local', 'chat', 200, false, 1, 'upstream'
      FROM generate_series(1, 2600) AS i`);
    await pool.query(
      `INSERT INTO usage_daily (day, key_id, model, requests) VALUES (current_date - 91, 'k', 'm', 2500)`,
    );
    const batches: number[] = [];
    class CountingEvents extends UsageEventsRepository {
      override async deleteOlderThan(days: number, limit: number): Promise<number> {
        const n = await super.deleteOlderThan(days, limit);
        batches.push(n);
        return n;
      }
    }
    const retention = new UsageRetention({
      events: new CountingEvents(pool),
      logger: createLogger({ service: 'metrics', destination: new LogCapture() }),
      retentionDays: 90,
      intervalMs: 60_000,
      batchSize: 1000,
    });

    assert.equal(await retention.runOnce(), 2500);
    assert.deepEqual(batches, [1000, 1000, 500]);
    const left = await pool.query(`SELECT count(*)::int AS n FROM usage_events`);
    assert.equal(left.rows[0].n, 100);
    const daily = await pool.query(`SELECT requests FROM usage_daily`);
    assert.deepEqual(daily.rows, [{ requests: 2500 }]);
  });
});
