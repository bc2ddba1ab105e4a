import type { Redis } from 'ioredis';
import { RPM_LIMITER_PREFIX, RPM_WINDOW_SEC, redisKey } from '@gguf-gateway/shared';

export interface Reserved {
  /** Requests taken from the window for this gateway to spend; 0 when the window is full. */
  taken: number;
  /** The window's count after taking them (every replica's requests). */
  consumed: number;
  /** Until the window resets. */
  msBeforeReset: number;
}

// Both scripts work on rate-limiter-flexible's own counter (a number under `<prefix>:<keyId>` that
// expires with its fixed window), the one auth consumes from: the count is shared exactly.
const RESERVE = `
redis.call('set', KEYS[1], 0, 'EX', ARGV[1], 'NX')
local room = tonumber(ARGV[2]) - tonumber(redis.call('get', KEYS[1]))
local take = math.min(tonumber(ARGV[3]), room)
if take < 1 then return {0, tonumber(ARGV[2]) - room, redis.call('pttl', KEYS[1])} end
local consumed = redis.call('incrby', KEYS[1], take)
local ttl = redis.call('pttl', KEYS[1])
if ttl == -1 then
  redis.call('expire', KEYS[1], ARGV[1])
  ttl = ARGV[1] * 1000
end
return {take, consumed, ttl}`;

// A later window lives longer than what was left of the reserving one: refund only into the same
// window, so unspent requests never become room in the next minute.
const REFUND = `
local ttl = redis.call('pttl', KEYS[1])
if ttl > 0 and ttl <= tonumber(ARGV[2]) then
  redis.call('decrby', KEYS[1], ARGV[1])
  return 1
end
return 0`;

type WithScripts = Redis & {
  rpmReserve(key: string, windowSec: number, limit: number, want: number): Promise<[number, number, number]>;
  rpmRefund(key: string, points: number, maxTtlMs: number): Promise<number>;
};

/** A key's rpm window in Redis, the very counter auth spends: the gateway reserves from it in blocks. */
export class RpmWindowRepository {
  private readonly redis: WithScripts;
  private readonly prefix: string;

  constructor(redis: Redis, prefix: string) {
    redis.defineCommand('rpmReserve', { numberOfKeys: 1, lua: RESERVE });
    redis.defineCommand('rpmRefund', { numberOfKeys: 1, lua: REFUND });
    this.redis = redis as WithScripts;
    this.prefix = redisKey(prefix, RPM_LIMITER_PREFIX);
  }

  /** Takes up to `want` requests of the key's window, as many as it has room for. */
  async reserve(keyId: string, limit: number, want: number): Promise<Reserved> {
    const [taken, consumed, ttl] = await this.redis.rpmReserve(this.key(keyId), RPM_WINDOW_SEC, limit, want);
    return { taken, consumed, msBeforeReset: Math.max(ttl, 0) };
  }

  /** Gives unspent requests back to the window they came from (and to no later one). */
  async refund(keyId: string, points: number, msBeforeResetWhenReserved: number): Promise<void> {
    await this.redis.rpmRefund(this.key(keyId), points, msBeforeResetWhenReserved);
  }

  private key(keyId: string): string {
    return `${this.prefix}:${keyId}`;
  }
}
