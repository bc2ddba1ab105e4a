import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import pg from 'pg';
import { redisKey, USAGE_CONSUMER_GROUP, USAGE_STREAM } from '@gguf-gateway/shared';
import {
  createTestDatabase,
  deleteRedisPrefix,
  fakeUsageEvent,
  killProcess,
  PrivatePostgres,
  stopProcess,
  testRedisPrefix,
  testSettings,
  waitFor,
  xaddUsageEvents,
  type ManagedProcess,
  type TestDatabase,
} from '@gguf-gateway/testkit';
import { startService } from '../support/services.js';

const EVENTS = 10_000;

async function startMetricsService(env: Record<string, string>): Promise<{ proc: ManagedProcess; url: string }> {
  const { proc, url } = await startService('metrics', env);
  return { proc, url };
}

async function counts(url: string): Promise<{ rows: number; distinct: number; rolledUp: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      `SELECT (SELECT count(*) FROM usage_events)::int AS rows,
              (SELECT count(DISTINCT request_id) FROM usage_events)::int AS distinct,
              (SELECT coalesce(sum(requests), 0) FROM usage_daily)::int AS "rolledUp"`,
    );
    return rows[0];
  } finally {
    await client.end();
  }
}

describe('metrics service process', function () {
  this.timeout(120_000);
  const events = Array.from({ length: EVENTS }, (_, i) => fakeUsageEvent(i));
  let prefix: string;
  let proc: ManagedProcess | undefined;

  beforeEach(() => {
    prefix = testRedisPrefix();
  });

  afterEach(async () => {
    if (proc) await stopProcess(proc);
    proc = undefined;
    await deleteRedisPrefix(prefix);
  });

  describe('with its own Postgres, stopped while events arrive', () => {
    let postgres: PrivatePostgres;
    let db: TestDatabase;

    before(async () => {
      postgres = await PrivatePostgres.start();
      db = await createTestDatabase({ migrate: true, serverUrl: postgres.url });
    });

    after(async () => {
      await postgres.destroy();
    });

    it('stays up, says Postgres is not ready, then writes all 10,000 events exactly once when it returns', async () => {
      const service = await startMetricsService({
        REDIS_URL: testSettings.TEST_REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        DATABASE_URL: db.url,
        USAGE_BATCH_SIZE: '500',
      });
      proc = service.proc;
      await waitFor('ready', async () => (await fetch(`${service.url}/readyz`)).status === 200);

      await postgres.stop();
      await xaddUsageEvents(prefix, events);
      const notReady = await waitFor('readyz to report Postgres', async () => {
        const res = await fetch(`${service.url}/readyz`);
        return res.status === 503 ? ((await res.json()) as { checks: Record<string, string> }) : null;
      });
      assert.match(notReady.checks.postgres!, /^postgres: /);
      assert.equal((await fetch(`${service.url}/healthz`)).status, 200);
      await waitFor('a failed write counted', async () =>
        /^usage_write_failures_total\{service="metrics"\} [1-9]/m.test(
          await (await fetch(`${service.url}/metrics`)).text(),
        ),
      );

      await postgres.start();
      await waitFor('all rows', async () => (await counts(db.url)).rows === EVENTS, 60_000, 250);
      assert.deepEqual(await counts(db.url), { rows: EVENTS, distinct: EVENTS, rolledUp: EVENTS });
      assert.equal(proc.child.exitCode, null, 'the service never exited');
      await waitFor('ready again', async () => (await fetch(`${service.url}/readyz`)).status === 200);
    });
  });

  describe('killed mid-batch', () => {
    let db: TestDatabase;

    before(async () => {
      db = await createTestDatabase({ migrate: true });
    });

    after(async () => {
      await db.drop();
    });

    it('writes every event exactly once after a SIGKILL and a restart', async () => {
      await xaddUsageEvents(prefix, events);
      const env = {
        REDIS_URL: testSettings.TEST_REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        DATABASE_URL: db.url,
        USAGE_BATCH_SIZE: '250',
        USAGE_CONSUMER_NAME: 'metrics-0',
      };
      proc = (await startMetricsService(env)).proc;
      await waitFor('some rows written', async () => (await counts(db.url)).rows > 0, 30_000, 5);

      // Hold the consumer's next INSERT on a lock, so the kill lands while a batch is in flight.
      const locker = new pg.Client({ connectionString: db.url });
      await locker.connect();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE usage_events IN SHARE ROW EXCLUSIVE MODE');
      await waitFor('a batch insert waiting on the lock', async () => {
        const { rows } = await locker.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO usage_events%'`,
        );
        return rows[0].n > 0;
      });
      await killProcess(proc);
      const redis = new Redis(testSettings.TEST_REDIS_URL);
      const [pending] = (await redis.xpending(redisKey(prefix, USAGE_STREAM), USAGE_CONSUMER_GROUP)) as [number];
      redis.disconnect();
      assert.ok(pending > 0, 'the killed consumer held a batch it had not acknowledged');
      // Released, the orphaned INSERT commits without its client: those entries are written but never acked.
      await locker.query('ROLLBACK');
      await locker.end();
      const atKill = await counts(db.url);
      assert.ok(atKill.rows < EVENTS, `killed before the end (${atKill.rows} rows)`);

      proc = (await startMetricsService(env)).proc;
      await waitFor('all rows', async () => (await counts(db.url)).rows === EVENTS, 60_000, 250);
      assert.deepEqual(await counts(db.url), { rows: EVENTS, distinct: EVENTS, rolledUp: EVENTS });
    });
  });
});
