import { Redis } from 'ioredis';
import { redisKey, USAGE_STREAM, USAGE_STREAM_FIELD, type UsageEvent } from '@gguf-gateway/shared';
import { testSettings } from './settings.js';

/** A plausible usage event, numbered so that a run can tell exactly which ones arrived. */
export function fakeUsageEvent(n: number, overrides: Partial<UsageEvent> = {}): UsageEvent {
  return {
    requestId: `req-${n}`,
    ts: new Date().toISOString(),
    keyId: `key-${n % 3}`,
    model: n % 2 === 0 ? 'tiny-llama' : 'tiny-llama-q8',
    backend: 'local',
    route: 'chat',
    status: 200,
    stream: n % 2 === 0,
    promptTokens: 10,
    completionTokens: 5,
    cachedTokens: 0,
    ttftMs: 12,
    durationMs: 40,
    errorCode: null,
    usageSource: 'upstream',
    ...overrides,
  };
}

/** XADDs the events to the usage stream the way the gateway does, pipelined in chunks. */
export async function xaddUsageEvents(
  prefix: string,
  events: UsageEvent[],
  url = testSettings.TEST_REDIS_URL,
): Promise<void> {
  const redis = new Redis(url);
  try {
    const key = redisKey(prefix, USAGE_STREAM);
    for (let i = 0; i < events.length; i += 1000) {
      const pipeline = redis.pipeline();
      for (const event of events.slice(i, i + 1000)) pipeline.xadd(key, '*', USAGE_STREAM_FIELD, JSON.stringify(event));
      await pipeline.exec();
    }
  } finally {
    redis.disconnect();
  }
}
