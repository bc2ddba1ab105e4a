import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { RPM_LIMITER_PREFIX, RPM_WINDOW_SEC, redisKey, type WindowFigures } from '@gguf-gateway/shared';

/**
 * A key's rpm window: the very Redis counter auth spends (same prefix, window and library), so a
 * request the gateway admits from a grant counts exactly like one auth admits, across replicas.
 * No insurance limiter here: while Redis is away the gateway asks auth, which has one.
 */
export class RpmWindowRepository {
  private readonly limiters = new Map<number, RateLimiterRedis>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  /**
   * Spends one request of the window; null when it is full (nothing spent). Throws when Redis
   * does not answer.
   */
  async spend(keyId: string, rpm: number): Promise<WindowFigures | null> {
    const limiter = this.limiter(rpm);
    try {
      return figures(await limiter.consume(keyId, 1), rpm);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      // rate-limiter-flexible counts the refused attempt too; give it back, as auth does.
      await limiter.reward(keyId, 1);
      return null;
    }
  }

  private limiter(rpm: number): RateLimiterRedis {
    let limiter = this.limiters.get(rpm);
    if (!limiter) {
      limiter = new RateLimiterRedis({
        storeClient: this.redis,
        keyPrefix: redisKey(this.prefix, RPM_LIMITER_PREFIX),
        points: rpm,
        duration: RPM_WINDOW_SEC,
        rejectIfRedisNotReady: true,
      });
      this.limiters.set(rpm, limiter);
    }
    return limiter;
  }
}

function figures(res: RateLimiterRes, limit: number): WindowFigures {
  return {
    limit,
    remaining: Math.max(limit - res.consumedPoints, 0),
    msBeforeReset: Math.max(res.msBeforeNext, 0),
  };
}
