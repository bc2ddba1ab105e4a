import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import request from 'supertest';
import {
  createLogger,
  createMetricsRegistry,
  createPgPool,
  parsePriceTable,
  redisKey,
  USAGE_STREAM,
  USAGE_STREAM_FIELD,
  type Pool,
  type UsageEvent,
} from '@gguf-gateway/shared';
import type { Registry } from 'prom-client';
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
import { createApp } from '../../src/app.js';
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

  function startConsumer(name = 'c1', claimIdleMs = 30_000, events = new UsageEventsRepository(pool)) {
    const registry = createMetricsRegistry('metrics');
    const metrics = createUsageMetrics(registry, () => stream.stats());
    const consumer = new UsageStreamConsumer({
      stream: new UsageStreamGroupRepository(redis, prefix),
      events,
      prices,
      metrics,
      logger: createLogger({ service: 'metrics', destination: new LogCapture() }),
      consumer: name,
      batchSize: 100,
      claimIdleMs,
      blockMs: 100,
      backlog: () => stream.stats(),
      backlogSampleMs: 1,
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
    await pool.query('TRUNCATE usage_events, usage_daily, usage_rejected_events');
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

  describe('with one bad value among good events', () => {
    const good = () => Array.from({ length: 10 }, (_, i) => fakeUsageEvent(i, { requestId: `good-${i}` }));

    async function tenRowsOneRejected(bad: UsageEvent, registry: Registry) {
      const events = good();
      await xaddUsageEvents(prefix, [...events.slice(0, 5), bad, ...events.slice(5)]);
      await waitFor('10 rows and 1 rejected', async () => {
        const rows = await count('SELECT count(*) n FROM usage_events');
        const rejected = await count('SELECT count(*) n FROM usage_rejected_events');
        return rows === 10 && rejected === 1;
      });
      await waitFor('nothing pending', async () => (await stream.stats()).pending === 0);
      const rollup = await pool.query(`SELECT sum(requests)::int AS requests FROM usage_daily`);
      assert.deepEqual(rollup.rows[0], { requests: 10 });
      const text = await registry.metrics();
      assert.match(text, /^usage_write_failures_total\{service="metrics"\} 0$/m, 'no retry loop');
      assert.match(text, /^usage_events_written_total\{service="metrics"\} 10$/m);
      assert.match(text, /^usage_events_invalid_total\{service="metrics"\} 1$/m);
      const { rows } = await pool.query<{ request_id: string | null; reason: string; event: string }>(
        'SELECT request_id, reason, event FROM usage_rejected_events',
      );
      return rows[0]!;
    }

    it('writes the 10 good ones and sets aside a promptTokens beyond integer range, with the reason', async () => {
      const { registry } = startConsumer();
      const bad = fakeUsageEvent(99, { requestId: 'poisoned', promptTokens: 3e9 });
      const rejected = await tenRowsOneRejected(bad, registry);
      assert.match(rejected.reason, /promptTokens/);
      assert.equal(JSON.parse(rejected.event).requestId, 'poisoned');
    });

    it('splits a batch Postgres refuses and sets aside only the refused row', async () => {
      const { registry } = startConsumer();
      // Valid to the parser, refused by Postgres (text cannot hold NUL): only Postgres can tell.
      const bad = fakeUsageEvent(99, { requestId: 'refused', model: 'tiny\u0000llama' });
      const rejected = await tenRowsOneRejected(bad, registry);
      assert.equal(rejected.request_id, 'refused');
      assert.match(rejected.reason, /^postgres refused the row: /);
    });
  });

  describe('readiness', () => {
    it('reports degraded once writes keep failing, while the events wait in Redis', async () => {
      const unreachable = createPgPool('postgres://postgres@127.0.0.1:1/none');
      try {
        const { consumer, registry } = startConsumer('c1', 30_000, new UsageEventsRepository(unreachable));
        const app = createApp({
          logger: createLogger({ service: 'metrics', destination: new LogCapture() }),
          registry,
          readiness: {},
          degradedBy: { usage: () => consumer.degradation() },
        });
        assert.equal((await request(app).get('/readyz')).body.status, 'ready');
        await xaddUsageEvents(prefix, [fakeUsageEvent(1)]);
        await waitFor('degraded', async () => (await request(app).get('/readyz')).body.status === 'degraded', 10_000);
        const ready = await request(app).get('/readyz');
        assert.equal(ready.status, 200);
        assert.match(ready.body.checks.usage, /writing usage events failed \d+ times in a row .*they wait in Redis/);
        assert.equal((await stream.stats()).pending, 1, 'the event is still pending, not lost');
      } finally {
        await Promise.all(consumers.splice(0).map((c) => c.stop()));
        await unreachable.end();
      }
    });

    it('reports degraded while the backlog grows at every look, and not once it shrinks', async () => {
      await stream.ensureGroup();
      const registry = createMetricsRegistry('metrics');
      // Never started: nothing drains the stream, as with a consumer that cannot keep up.
      const consumer = new UsageStreamConsumer({
        stream,
        events: new UsageEventsRepository(pool),
        prices,
        metrics: createUsageMetrics(registry, () => stream.stats()),
        logger: createLogger({ service: 'metrics', destination: new LogCapture() }),
        consumer: 'slow',
        batchSize: 100,
        claimIdleMs: 30_000,
        backlog: () => stream.stats(),
        backlogSampleMs: 1,
      });
      const looks: (string | null)[] = [];
      for (let i = 0; i < 5; i++) {
        await xaddUsageEvents(prefix, [fakeUsageEvent(i)]);
        await new Promise((r) => setTimeout(r, 5));
        looks.push(await consumer.degradation());
      }
      assert.deepEqual(looks.slice(0, 4), [null, null, null, null]);
      assert.match(looks[4] ?? '', /the usage backlog keeps growing \(1 -> 5 events not yet written\)/);
      await stream.ack((await stream.readNew('slow', 3, 10)).map((e) => e.id));
      await new Promise((r) => setTimeout(r, 5));
      assert.equal(await consumer.degradation(), null);
    });
  });
});
