import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { testSettings } from './settings.js';

/** A key prefix of its own for one test run, so runs never see each other's keys. */
export function testRedisPrefix(): string {
  return `gg-test:${randomBytes(5).toString('hex')}:`;
}

/** Deletes every key under a prefix (BullMQ's keys included when they use it). */
export async function deleteRedisPrefix(prefix: string, url = testSettings.TEST_REDIS_URL): Promise<void> {
  const redis = new Redis(url);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
