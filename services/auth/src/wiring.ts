import type { Express } from 'express';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import type { Logger, PriceTable } from '@gguf-gateway/shared';
import { ApiKeysService } from './api-keys.service.js';
import { createApp } from './app.js';
import { createAuthMetrics } from './auth.metrics.js';
import { AuthorizeService, type AuthorizeSettings } from './authorize.service.js';
import { KeysFileRepository } from './keys-file.repository.js';
import { InsuredLeases, MemoryLeases, RedisLeases } from './leases.repository.js';
import { LimitsRepository } from './limits.repository.js';

/**
 * A Redis that hangs (not down, just not answering) must not hang authorize: past this, the command
 * fails and the insurance limiter answers.
 */
export const REDIS_COMMAND_TIMEOUT_MS = 500;

export interface AuthWiring extends Omit<AuthorizeSettings, 'limitsShared' | 'grantTtlMs'> {
  /** GRANT_TTL_MS; none when absent. */
  grantTtlMs?: number;
  logger: Logger;
  registry: Registry;
  redis: Redis;
  redisKeyPrefix: string;
  keysFile: string;
  keysFilePollMs: number;
  /** KEYS_FILE_GRACE_MS; 30 s when absent. */
  keysFileGraceMs?: number;
  prices: PriceTable;
  /** AUTH_INTERNAL_TOKEN. */
  internalToken: string;
  /** DEFAULT_KEY_RPM: the rpm of a key whose line sets none. */
  defaultKeyRpm?: number;
}

export interface AuthParts {
  app: Express;
  keys: ApiKeysService;
  /** Stops watching the keys file; the caller owns the server and the Redis connection. */
  stop(): void;
}

/** Builds the auth app from its settings, loads the keys file once and starts watching it. */
export async function buildAuth(wiring: AuthWiring): Promise<AuthParts> {
  const { logger, registry, redis, redisKeyPrefix: prefix } = wiring;
  const metrics = createAuthMetrics(registry, () => redis.status !== 'ready');
  const keys = new ApiKeysService(
    new KeysFileRepository(wiring.keysFile),
    logger,
    metrics.keysLoaded,
    wiring.keysFileGraceMs,
    wiring.defaultKeyRpm ?? null,
  );
  await keys.reload();
  keys.watch(wiring.keysFilePollMs);
  const leases = new InsuredLeases(redis, new RedisLeases(redis, prefix), new MemoryLeases(), logger);
  const authorizer = new AuthorizeService(keys, new LimitsRepository(redis, prefix), leases, wiring.prices, metrics, {
    leaseTtlSec: wiring.leaseTtlSec,
    failedAuthMax: wiring.failedAuthMax,
    failedAuthWindowSec: wiring.failedAuthWindowSec,
    grantTtlMs: wiring.grantTtlMs ?? 0,
    limitsShared: () => redis.status === 'ready',
  });
  const app = createApp({ logger, registry, redis, keys, authorizer, internalToken: wiring.internalToken });
  return { app, keys, stop: () => keys.stop() };
}
