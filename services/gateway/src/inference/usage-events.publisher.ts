import type { Redis } from 'ioredis';
import { USAGE_STREAM, USAGE_STREAM_FIELD, redisKey, type UsageEvent } from '@gguf-gateway/shared';

// Large and approximate: a stopped metrics service must not lose recent events, and `~` keeps
// trimming cheap.
const STREAM_MAX_LENGTH = 1_000_000;
// Events are written in batches, one Redis round trip for all the requests that ended within this
// (or for this many), instead of one per request.
const BATCH_WINDOW_MS = 5;
const MAX_BATCH = 256;

interface Pending {
  event: UsageEvent;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class UsageEventsPublisher {
  private readonly stream: string;
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.stream = redisKey(prefix, USAGE_STREAM);
  }

  /** Resolves once the event is on the stream; rejects when it could not be written. */
  append(event: UsageEvent): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ event, resolve, reject });
      if (this.pending.length >= MAX_BATCH) void this.flush();
      else this.timer ??= setTimeout(() => void this.flush(), BATCH_WINDOW_MS);
    });
  }

  /** Writes what is waiting now (on shutdown, before Redis closes). */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const { event } of batch) {
      pipeline.xadd(this.stream, 'MAXLEN', '~', STREAM_MAX_LENGTH, '*', USAGE_STREAM_FIELD, JSON.stringify(event));
    }
    try {
      const results = (await pipeline.exec()) ?? [];
      batch.forEach(({ resolve, reject }, i) => {
        const err = results[i]?.[0] ?? (results[i] ? null : new Error('no reply for the usage event'));
        if (err) reject(err);
        else resolve();
      });
    } catch (err) {
      for (const { reject } of batch) reject(err as Error);
    }
  }
}
