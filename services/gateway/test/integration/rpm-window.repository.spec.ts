import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { RPM_LIMITER_PREFIX, redisKey } from '@gguf-gateway/shared';
import { deleteRedisPrefix, testRedisPrefix, testSettings } from '@gguf-gateway/testkit';
import { RpmWindowRepository } from '../../src/authorization/rpm-window.repository.js';

describe('the rpm window grant-served requests spend from, on real Redis', function () {
  const prefix = testRedisPrefix();
  const redis = new Redis(testSettings.TEST_REDIS_URL, { enableAutoPipelining: true });
  const window = new RpmWindowRepository(redis, prefix);
  const counter = (keyId: string) => redisKey(prefix, `${RPM_LIMITER_PREFIX}:${keyId}`);

  after(async () => {
    await deleteRedisPrefix(prefix);
    redis.disconnect();
  });

  it("counts each request in auth's own one-minute counter, with the figures for the headers", async () => {
    const first = await window.spend('count', 10);
    const second = await window.spend('count', 10);
    assert.deepEqual([first?.remaining, second?.remaining, second?.limit], [9, 8, 10]);
    assert.equal(await redis.get(counter('count')), '2');
    assert.ok((await redis.pttl(counter('count'))) > 59_000, 'the window lasts a minute');
    assert.ok(second!.msBeforeReset > 59_000 && second!.msBeforeReset <= 60_000);
  });

  it('spends on from what auth counted, and refuses at the limit without counting the refusal', async () => {
    await redis.set(counter('full'), 2, 'EX', 60);
    assert.equal((await window.spend('full', 3))?.remaining, 0);
    assert.equal(await window.spend('full', 3), null);
    assert.equal(await redis.get(counter('full')), '3');
  });

  it('spends on a new connection whose first commands wait in the same auto-pipeline', async () => {
    const fresh = new Redis(testSettings.TEST_REDIS_URL, { enableAutoPipelining: true });
    try {
      const fromFresh = new RpmWindowRepository(fresh, prefix);
      await new Promise((resolve) => fresh.once('ready', resolve));
      const spent = await Promise.all([fresh.ping(), fromFresh.spend('fresh', 5), fromFresh.spend('fresh', 7)]);
      assert.deepEqual([spent[1]?.remaining, spent[2]?.remaining], [4, 5]);
    } finally {
      fresh.disconnect();
    }
  });

  it('never admits more than the limit from concurrent requests', async () => {
    const spent = await Promise.all(Array.from({ length: 30 }, () => window.spend('burst', 20)));
    assert.equal(spent.filter((s) => s !== null).length, 20);
    assert.equal(await redis.get(counter('burst')), '20');
  });
});
