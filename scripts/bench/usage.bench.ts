// Usage pipeline: events/s from the Redis stream into Postgres (rows and daily rollup committed,
// entries acknowledged and trimmed), with the real consumer, real Redis and real Postgres.
import { Redis } from 'ioredis';
import { createLogger, createMetricsRegistry, createPgPool } from '@gguf-gateway/shared';
import {
  createTestDatabase,
  deleteRedisPrefix,
  fakeUsageEvent,
  LogCapture,
  testRedisPrefix,
  testSettings,
  waitFor,
  xaddUsageEvents,
} from '@gguf-gateway/testkit';
import { UsageEventsRepository } from '../../services/metrics/src/usage-events.repository.js';
import { UsageStreamConsumer } from '../../services/metrics/src/usage-stream.consumer.js';
import { UsageStreamGroupRepository } from '../../services/metrics/src/usage-stream-group.repository.js';
import { createUsageMetrics } from '../../services/metrics/src/usage.metrics.js';
import type { BenchRow, BenchSuite } from './bench.js';

const EVENTS = 100_000;
const BATCH_SIZES = [500, 2000];

async function drain(batchSize: number): Promise<BenchRow> {
  const db = await createTestDatabase({ migrate: true });
  const pool = createPgPool(db.url);
  const prefix = testRedisPrefix();
  const redis = new Redis(testSettings.TEST_REDIS_URL, { maxRetriesPerRequest: null });
  try {
    const events = Array.from({ length: EVENTS }, (_, i) => fakeUsageEvent(i));
    await xaddUsageEvents(prefix, events);
    const stream = new UsageStreamGroupRepository(redis, prefix);
    const metrics = createUsageMetrics(createMetricsRegistry('metrics'), () => stream.stats());
    const consumer = new UsageStreamConsumer({
      stream,
      events: new UsageEventsRepository(pool),
      prices: [],
      metrics,
      logger: createLogger({ service: 'metrics', destination: new LogCapture() }),
      consumer: 'bench',
      batchSize,
      claimIdleMs: 30_000,
      blockMs: 100,
    });
    const started = process.hrtime.bigint();
    consumer.start();
    await waitFor(
      'all events written',
      async () => (await metrics.written.get()).values[0]?.value === EVENTS,
      300_000,
      5,
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await consumer.stop();
    const rows = Number((await pool.query('SELECT count(*) AS n FROM usage_events')).rows[0].n);
    return {
      case: `stream -> Postgres, batch ${batchSize}`,
      events: rows,
      seconds: seconds.toFixed(2),
      'events/s': Math.round(rows / seconds),
      'stream left': await redis.xlen(stream.key),
    };
  } finally {
    redis.disconnect();
    await deleteRedisPrefix(prefix);
    await pool.end();
    await db.drop();
  }
}

export const usageBench: BenchSuite = {
  name: 'usage',
  async run() {
    const rows: BenchRow[] = [];
    for (const batchSize of BATCH_SIZES) rows.push(await drain(batchSize));
    return rows;
  },
};
