// The usage stream is never trimmed under the metrics service: past its cap new events wait in the
// local spool (back-pressure) and reach the stream once there is room again, none lost.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { USAGE_STREAM, createLogger, redisKey } from '@gguf-gateway/shared';
import {
  LogCapture,
  deleteRedisPrefix,
  fakeUsageEvent,
  testRedisPrefix,
  testSettings,
  waitFor,
} from '@gguf-gateway/testkit';
import { UsageEventsPublisher } from '../../src/inference/usage-events.publisher.js';
import { UsageSpoolRepository } from '../../src/inference/usage-spool.repository.js';

describe('usage events publisher', function () {
  const prefix = testRedisPrefix();
  const stream = redisKey(prefix, USAGE_STREAM);
  let redis: Redis;
  let publisher: UsageEventsPublisher;
  let spoolDir: string;

  before(() => {
    redis = new Redis(testSettings.TEST_REDIS_URL);
    spoolDir = mkdtempSync(join(tmpdir(), 'gg-publisher-spool-'));
    const logger = createLogger({ service: 'gateway', destination: new LogCapture() });
    publisher = new UsageEventsPublisher(redis, prefix, new UsageSpoolRepository(spoolDir), logger, 3);
    publisher.start();
  });

  after(async () => {
    await publisher.stop();
    redis.disconnect();
    await deleteRedisPrefix(prefix);
  });

  it('spools events past the stream cap instead of trimming, and adds them once the consumer made room', async () => {
    await Promise.all([1, 2, 3].map((n) => publisher.append(fakeUsageEvent(n))));
    assert.equal(await redis.xlen(stream), 3);
    await Promise.all([4, 5].map((n) => publisher.append(fakeUsageEvent(n))));
    assert.equal(await redis.xlen(stream), 3, 'the full stream is left as it is');
    assert.equal(publisher.waiting, 2);
    // The metrics service acknowledged and trimmed what it wrote.
    await redis.xtrim(stream, 'MAXLEN', 0);
    await waitFor('the spool replayed', async () => publisher.waiting === 0 || null, 5000, 50);
    const ids = (await redis.xrange(stream, '-', '+')).map(
      ([, fields]) => (JSON.parse(fields[1]!) as { requestId: string }).requestId,
    );
    assert.deepEqual(ids, [fakeUsageEvent(4).requestId, fakeUsageEvent(5).requestId]);
    assert.deepEqual(
      readdirSync(spoolDir).filter((n) => n.endsWith('.jsonl')),
      [],
    );
  });
});
