import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { RPM_LIMITER_PREFIX, RPM_WINDOW_SEC, redisKey, type WindowFigures } from '@gguf-gateway/shared';

// A key's rpm window, the very counter auth consumes from: rate-limiter-flexible's own fixed window
// under RPM_LIMITER_PREFIX, so a grant-served request counts exactly as one auth admits, across every
// gateway and auth replica. One consume is one script call, written to Redis together with the
// commands of the requests around it (auto-pipelining).

export class RpmWindowRepository {
  /** One limiter per rpm figure (rate-limiter-flexible fixes the limit per limiter): as many as keys have. */
  private readonly limiters = new Map<number, RateLimiterRedis>();
  private readonly keyPrefix: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keyPrefix = redisKey(prefix, RPM_LIMITER_PREFIX);
  }

  /**
   * Spends one request of the key's window: the window after it, or null when it is full (auth then
   * words the 429). Throws when Redis does not answer.
   */
  async spend(keyId: string, rpm: number): Promise<WindowFigures | null> {
    const limiter = this.limiter(rpm);
    try {
      const spent = await limiter.consume(keyId);
      return { limit: rpm, remaining: spent.remainingPoints, msBeforeReset: Math.max(spent.msBeforeNext, 0) };
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      // rate-limiter-flexible counts the refused attempt too; give it back, as auth does, so only
      // admitted requests count.
      await limiter.reward(keyId);
      return null;
    }
  }

  private limiter(rpm: number): RateLimiterRedis {
    let limiter = this.limiters.get(rpm);
    if (!limiter) {
      limiter = new RateLimiterRedis({
        storeClient: this.redis,
        keyPrefix: this.keyPrefix,
        points: rpm,
        duration: RPM_WINDOW_SEC,
        // Redis away: the request asks auth, whose insurance limiter answers.
        rejectIfRedisNotReady: true,
      });
      this.limiters.set(rpm, limiter);
    }
    return limiter;
  }
}
