import type { Redis } from 'ioredis';
import { USAGE_STREAM, USAGE_STREAM_FIELD, redisKey, type UsageEvent } from '@gguf-gateway/shared';

// Large and approximate: a stopped metrics service must not lose recent events, and `~` keeps
// trimming cheap.
const STREAM_MAX_LENGTH = 1_000_000;

export class UsageStreamRepository {
  private readonly stream: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.stream = redisKey(prefix, USAGE_STREAM);
  }

  async append(event: UsageEvent): Promise<void> {
    await this.redis.xadd(
      this.stream,
      'MAXLEN',
      '~',
      STREAM_MAX_LENGTH,
      '*',
      USAGE_STREAM_FIELD,
      JSON.stringify(event),
    );
  }
}
