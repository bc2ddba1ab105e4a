import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import {
  createLogger,
  createMetricsRegistry,
  createPgPool,
  parsePriceTable,
  redisKey,
  USAGE_STREAM,
  USAGE_STREAM_FIELD,
  type Pool,
} from '@gguf-gateway/shared';
import {
  createTestDatabase,
  deleteRedisPrefix,
  fakeUsageEvent,
  LogCapture,
  testRedisPrefix,
  testSettings,
  waitFor,
  xaddUsageEvents,
  type TestDatabase,
} from '@gguf-gateway/testkit';
import { UsageEventsRepository } from '../../src/usage-events.repository.js';
import { UsageStreamConsumer } from '../../src/usage-stream.consumer.js';
import { UsageStreamGroupRepository } from '../../src/usage-stream-group.repository.js';
import { createUsageMetrics } from '../../src/usage.metrics.js';

const prices = parsePriceTable(
  'models:\n  "tiny-llama": { prompt: 1000, completion: 2000 }\n  "*": { prompt: 0, completion: 0 }\n',
);

describe('usage stream consumer', () => {
  let db: TestDatabase;
  let pool: Pool;
  let redis: Redis;
  let prefix: string;
  let stream: UsageStreamGroupRepository;
  const consumers: UsageStreamConsumer[] = [];

  function startConsumer(name = 'c1', claimIdleMs = 30_000) {
    const registry = createMetricsRegistry('metrics');
    const metrics = createUsageMetrics(registry, () => stream.stats());
    const consumer = new UsageStreamConsumer({
      stream: new UsageStreamGroupRepository(redis, prefix),
      events: new UsageEventsRepository(pool),
      prices,
      metrics,
      logger: createLogger({ service: 'metrics', destination: new LogCapture() }),
      consumer: name,
      batchSize: 100,
      claimIdleMs,
      blockMs: 100,
    });
    consumers.push(consumer);
    consumer.start();
    return { consumer, registry };
  }

  const count = async (sql: string) => Number((await pool.query<{ n: string }>(sql)).rows[0]!.n);

  before(async () => {
    db = await createTestDatabase({ migrate: true });
    pool = createPgPool(db.url);
  });

  beforeEach(async () => {
    prefix = testRedisPrefix();
    redis = new Redis(testSettings.TEST_REDIS_URL, { maxRetriesPerRequest: null });
    stream = new UsageStreamGroupRepository(redis, prefix);
    await pool.query('TRUNCATE usage_events, usage_daily');
  });

  afterEach(async () => {
    await Promise.all(consumers.splice(0).map((c) => c.stop()));
    await deleteRedisPrefix(prefix);
    redis.disconnect();
  });

  after(async () => {
    await pool.end();
    await db.drop();
  });

  it('writes each event once with its cost, rolls it up per day, key and model, and counts it', async () => {
    const { registry } = startConsumer();
    const events = Array.from({ length: 250 }, (_, i) => fakeUsageEvent(i, { ts: '2026-11-20T10:00:00.000Z' }));
    // The same request ids again, as a gateway retrying its XADD would send them.
    await xaddUsageEvents(prefix, [...events, ...events.slice(0, 50)]);
    await waitFor(
      'all events acknowledged',
      async () => (await stream.stats()).pending === 0 && (await count('SELECT count(*) n FROM usage_events')) === 250,
    );
    await waitFor('stream drained', async () => (await stream.stats()).lag === 0);

    const tiny = await pool.query(`SELECT sum(cost_usd)::float8 AS cost FROM usage_events WHERE model = 'tiny-llama'`);
    // 125 requests x (10 prompt x $1000/M + 5 completion x $2000/M) = 125 x $0.02
    assert.equal(tiny.rows[0].cost, 2.5);
    const daily = await pool.query(
      `SELECT day::text, sum(requests)::int AS requests, sum(prompt_tokens)::int AS prompt, sum(cost_usd)::float8 AS cost
       FROM usage_daily GROUP BY day`,
    );
    assert.deepEqual(daily.rows, [{ day: '2026-11-20', requests: 250, prompt: 2500, cost: 2.5 }]);

    const text = await registry.metrics();
    assert.match(text, /^usage_events_written_total\{service="metrics"\} 250$/m);
    assert.match(
      text,
      /^usage_requests_total\{key_id="key-0",model="tiny-llama",status_class="2xx",service="metrics"\} 42$/m,
    );
    assert.match(text, /^usage_stream_pending\{service="metrics"\} 0$/m);
  });

  it('counts failed and aborted requests as errors in the rollup', async () => {
    const { registry } = startConsumer();
    await xaddUsageEvents(prefix, [
      fakeUsageEvent(1, { keyId: 'k', status: 200 }),
      fakeUsageEvent(2, { keyId: 'k', status: 429, errorCode: 'rate_limit_exceeded' }),
      fakeUsageEvent(3, { keyId: 'k', status: 200, errorCode: 'client_aborted' }),
    ]);
    await waitFor('rows', async () => (await count('SELECT count(*) n FROM usage_events')) === 3);
    const rollup = await pool.query(
      `SELECT sum(requests)::int AS requests, sum(errors)::int AS errors FROM usage_daily`,
    );
    assert.deepEqual(rollup.rows[0], { requests: 3, errors: 2 });
    const text = await registry.metrics();
    assert.match(
      text,
      /usage_requests_total\{key_id="k",model="tiny-llama-q8",status_class="aborted",service="metrics"\} 1/,
    );
    assert.match(text, /usage_requests_total\{key_id="k",model="tiny-llama",status_class="4xx",service="metrics"\} 1/);
  });

  it('acknowledges and skips an entry that is not a usage event, and writes the rest', async () => {
    const { registry } = startConsumer();
    await redis.xadd(redisKey(prefix, USAGE_STREAM), '*', USAGE_STREAM_FIELD, '{"requestId":');
    await xaddUsageEvents(prefix, [fakeUsageEvent(1)]);
    await waitFor('the valid row', async () => (await count('SELECT count(*) n FROM usage_events')) === 1);
    await waitFor('nothing pending', async () => (await stream.stats()).pending === 0);
    assert.match(await registry.metrics(), /^usage_events_invalid_total\{service="metrics"\} 1$/m);
  });

  it('trims the stream only below what the group acknowledged', async () => {
    await stream.ensureGroup();
    await xaddUsageEvents(
      prefix,
      Array.from({ length: 10 }, (_, i) => fakeUsageEvent(i)),
    );
    const delivered = await stream.readNew('reader', 6, 10);
    await stream.ack(delivered.slice(0, 3).map((e) => e.id));
    // Entries 0-2 are acked; 3-5 are pending; 6-9 were never delivered: only 0-2 may go.
    assert.equal(await stream.trimAcknowledged(), 3);
    assert.equal(await redis.xlen(stream.key), 7);
    await stream.ack(delivered.slice(3).map((e) => e.id));
    assert.equal(await stream.trimAcknowledged(), 2);
    assert.equal(await redis.xlen(stream.key), 5, 'keeps the last delivered entry and all undelivered ones');
  });

  it('reclaims entries a crashed consumer left pending and writes them', async () => {
    await stream.ensureGroup();
    await xaddUsageEvents(
      prefix,
      Array.from({ length: 30 }, (_, i) => fakeUsageEvent(i)),
    );
    // "crashed" reads 30 entries and never acknowledges them.
    assert.equal((await stream.readNew('crashed', 30, 10)).length, 30);
    startConsumer('survivor', 200);
    await waitFor('reclaimed rows', async () => (await count('SELECT count(*) n FROM usage_events')) === 30);
    await waitFor('nothing pending', async () => (await stream.stats()).pending === 0);
  });
});
