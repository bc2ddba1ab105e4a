import { Redis, type RedisOptions } from 'ioredis';

/**
 * `worker`: BullMQ workers and blocking readers, which must retry forever (maxRetriesPerRequest null).
 * `request-path`: code on an HTTP request, which must fail fast when Redis is away instead of queueing.
 */
export type RedisRole = 'worker' | 'request-path';

export function createRedis(url: string, role: RedisRole, extra: RedisOptions = {}): Redis {
  const byRole: RedisOptions =
    role === 'worker'
      ? { maxRetriesPerRequest: null }
      : { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000 };
  return new Redis(url, {
    lazyConnect: false,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    ...byRole,
    ...extra,
  });
}

/** Readiness check: null when Redis answers PING. */
export async function redisProblem(redis: Redis): Promise<string | null> {
  if (redis.status !== 'ready') return `redis connection is ${redis.status}`;
  try {
    await redis.ping();
    return null;
  } catch (err) {
    return `redis: ${(err as Error).message}`;
  }
}
