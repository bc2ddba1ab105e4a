import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { RPM_LIMITER_PREFIX, createLogger, redisKey } from '@gguf-gateway/shared';
import { LogCapture, deleteRedisPrefix, testRedisPrefix, testSettings } from '@gguf-gateway/testkit';
import { RpmReservations } from '../../src/authorization/rpm-reservations.js';
import { RpmWindowRepository } from '../../src/authorization/rpm-window.repository.js';

describe('rpm window reservations on real Redis', function () {
  const prefix = testRedisPrefix();
  const redis = new Redis(testSettings.TEST_REDIS_URL);
  const window = new RpmWindowRepository(redis, prefix);
  const counter = (keyId: string) => redisKey(prefix, `${RPM_LIMITER_PREFIX}:${keyId}`);

  after(async () => {
    await deleteRedisPrefix(prefix);
    redis.disconnect();
  });

  it('takes no more than the room left in the window', async () => {
    assert.equal((await window.reserve('room', 10, 4)).taken, 4);
    const rest = await window.reserve('room', 10, 8);
    assert.deepEqual([rest.taken, rest.consumed], [6, 10]);
    assert.equal((await window.reserve('room', 10, 1)).taken, 0);
    assert.ok((await redis.pttl(counter('room'))) > 59_000, 'the window lasts a minute');
  });

  it('refunds unspent requests into the window they came from', async () => {
    const reserved = await window.reserve('refund', 100, 10);
    await window.refund('refund', 7, reserved.msBeforeReset);
    assert.equal(await redis.get(counter('refund')), '3');
  });

  it('never refunds into a later window', async () => {
    const reserved = await window.reserve('later', 100, 10);
    // The window ended and a new one began: its counter lives longer than the old one had left.
    await redis.set(counter('later'), 2, 'PX', reserved.msBeforeReset + 1000);
    await window.refund('later', 7, reserved.msBeforeReset);
    assert.equal(await redis.get(counter('later')), '2');
  });

  it('spends from growing blocks and refunds every unspent request on shutdown', async () => {
    const reservations = new RpmReservations(
      window,
      createLogger({ service: 'gateway', destination: new LogCapture() }),
    );
    assert.equal((await reservations.spend('close', 1000, 20))?.remaining, 999);
    await new Promise((resolve) => setTimeout(resolve, 40));
    // The last block was spent in full: the next one is twice as large, and one of it is left.
    assert.equal((await reservations.spend('close', 1000, 60_000))?.remaining, 998);
    assert.equal(await redis.get(counter('close')), '3');
    await reservations.close();
    assert.equal(await redis.get(counter('close')), '2');
  });
});
