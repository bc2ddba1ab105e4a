import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { redisKey } from '@gguf-gateway/shared';

export interface CounterState {
  /** Points used in the current window. */
  consumed: number;
  remaining: number;
  /** Until the window resets; 0 when nothing was used yet. */
  msBeforeReset: number;
}

export interface Consumed extends CounterState {
  allowed: boolean;
}

/**
 * Fixed-window counters in Redis (rate-limiter-flexible), shared exactly by every auth replica.
 * Each has an in-memory insurance limiter that counts per instance while Redis is away, and the
 * Redis one takes over again as soon as the connection is back.
 */
export class LimitsRepository {
  private readonly limiters = new Map<string, RateLimiterRedis>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  /** Uses `points` if the window has room; a refused attempt uses nothing. */
  async consume(counter: string, key: string, limit: number, windowSec: number, points = 1): Promise<Consumed> {
    try {
      return { allowed: true, ...state(await this.limiter(counter, limit, windowSec).consume(key, points), limit) };
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      // rate-limiter-flexible counts the refused attempt too; give it back so only allowed ones count.
      const after = await this.limiter(counter, limit, windowSec).reward(key, points);
      return { allowed: false, ...state(after, limit) };
    }
  }

  /** What the window has used, without using any. */
  async peek(counter: string, key: string, limit: number, windowSec: number): Promise<CounterState> {
    const res = await this.limiter(counter, limit, windowSec).get(key);
    return res ? state(res, limit) : { consumed: 0, remaining: limit, msBeforeReset: 0 };
  }

  /** Adds `points` whatever the window holds (tokens and cost are charged after the fact). */
  async charge(counter: string, key: string, limit: number, windowSec: number, points: number): Promise<void> {
    if (points > 0) await this.limiter(counter, limit, windowSec).penalty(key, points);
  }

  private limiter(counter: string, limit: number, windowSec: number): RateLimiterRedis {
    const id = `${counter}:${limit}:${windowSec}`;
    let limiter = this.limiters.get(id);
    if (!limiter) {
      // One Redis key per counter and key id whatever the limit, so a changed limit keeps the count.
      const keyPrefix = redisKey(this.prefix, `auth:${counter}`);
      limiter = new RateLimiterRedis({
        storeClient: this.redis,
        keyPrefix,
        points: limit,
        duration: windowSec,
        rejectIfRedisNotReady: true,
        insuranceLimiter: new RateLimiterMemory({ keyPrefix, points: limit, duration: windowSec }),
      });
      this.limiters.set(id, limiter);
    }
    return limiter;
  }
}

function state(res: RateLimiterRes, limit: number): CounterState {
  return {
    consumed: res.consumedPoints,
    remaining: Math.max(limit - res.consumedPoints, 0),
    msBeforeReset: Math.max(res.msBeforeNext, 0),
  };
}
