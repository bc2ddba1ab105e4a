import type { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { RPM_LIMITER_PREFIX, RPM_WINDOW_SEC, redisKey, type WindowFigures } from '@gguf-gateway/shared';

// A key's rpm window, the very counter auth consumes from: rate-limiter-flexible's own fixed window
// under RPM_LIMITER_PREFIX, so a grant-served request counts exactly as one auth admits, across every
// gateway and auth replica. One consume is one script call, written to Redis together with the
// commands of the requests around it (auto-pipelining).

export class RpmWindowRepository {
  private readonly limiter: RateLimiterRedis;

  constructor(redis: Redis, prefix: string) {
    // One limiter, made here before any command is pipelined: rate-limiter-flexible defines its script
    // on the connection as a limiter is made, and ioredis breaks an auto-pipeline that is pending
    // while a script is defined (redis/ioredis#1931: an uncaught TypeError). So not one limiter per
    // rpm figure: its own limit is never reached, and each key's rpm is compared in `spend`.
    this.limiter = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: redisKey(prefix, RPM_LIMITER_PREFIX),
      points: Number.MAX_SAFE_INTEGER,
      duration: RPM_WINDOW_SEC,
      // Redis away: the request asks auth, whose insurance limiter answers.
      rejectIfRedisNotReady: true,
    });
  }

  /**
   * Spends one request of the key's window: the window after it, or null when it is full (auth then
   * words the 429). Throws when Redis does not answer.
   */
  async spend(keyId: string, rpm: number): Promise<WindowFigures | null> {
    const spent = await this.limiter.consume(keyId);
    if (spent.consumedPoints > rpm) {
      // Give the refused request back, as auth does, so that only admitted requests count.
      await this.limiter.reward(keyId);
      return null;
    }
    return { limit: rpm, remaining: rpm - spent.consumedPoints, msBeforeReset: Math.max(spent.msBeforeNext, 0) };
  }
}
