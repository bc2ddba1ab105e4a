import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Express } from 'express';
import { pendingMigrations } from '@gguf-gateway/db';
import {
  closeServer,
  createLogger,
  createMetricsRegistry,
  createPgPool,
  createRedis,
  loadPriceTable,
  postgresProblem,
  redisProblem,
  type Logger,
  type ShutdownStep,
} from '@gguf-gateway/shared';
import { createApp } from './app.js';
import type { MetricsConfig } from './config.js';
import { UsageEventsRepository } from './usage-events.repository.js';
import { UsageRetention } from './usage-retention.service.js';
import { UsageStreamConsumer } from './usage-stream.consumer.js';
import { UsageStreamGroupRepository } from './usage-stream-group.repository.js';
import { createUsageMetrics } from './usage.metrics.js';

export interface MetricsParts {
  app: Express;
  logger: Logger;
  /**
   * Waits until the orchestrator has migrated Postgres (it may be down, or being migrated: the
   * service stays up and /readyz says so), then starts the consumer and the retention job.
   */
  start(): Promise<void>;
  /** Everything to close on shutdown, in order, after the HTTP server `server`. */
  closeSteps(server: Server): ShutdownStep[];
}

/** The metrics service's one composition root: main.ts and the tests build it here. */
export async function buildMetrics(config: MetricsConfig, overrides: { logger?: Logger } = {}): Promise<MetricsParts> {
  const logger = overrides.logger ?? createLogger({ service: 'metrics', level: config.LOG_LEVEL });
  const prices = await loadPriceTable(config.PRICES_FILE);
  // The consumer blocks on XREADGROUP and must wait out a Redis restart: a connection of its own.
  const consumerRedis = createRedis(config.REDIS_URL, 'worker');
  const redis = createRedis(config.REDIS_URL, 'request-path');
  for (const r of [consumerRedis, redis]) r.on('error', (err) => logger.warn({ err }, 'redis error'));
  const pool = createPgPool(config.DATABASE_URL);

  const registry = createMetricsRegistry('metrics');
  const groupStats = new UsageStreamGroupRepository(redis, config.REDIS_KEY_PREFIX);
  const metrics = createUsageMetrics(registry, () => groupStats.stats());
  const events = new UsageEventsRepository(pool);
  const consumer = new UsageStreamConsumer({
    stream: new UsageStreamGroupRepository(consumerRedis, config.REDIS_KEY_PREFIX),
    events,
    prices,
    metrics,
    logger,
    consumer: config.USAGE_CONSUMER_NAME,
    batchSize: config.USAGE_BATCH_SIZE,
    claimIdleMs: config.USAGE_CLAIM_IDLE_MS,
  });
  const retention = new UsageRetention({
    events,
    logger,
    retentionDays: config.USAGE_RETENTION_DAYS,
    intervalMs: config.RETENTION_INTERVAL_MS,
  });

  let migrated = false;
  let stopping = false;
  const app = createApp({
    logger,
    registry,
    readiness: {
      redis: () => redisProblem(redis),
      postgres: () => postgresProblem(pool),
      migrations: () => (migrated ? null : 'database migrations not applied yet'),
      consumer: () => consumer.problem(),
    },
  });

  return {
    app,
    logger,
    async start() {
      for (let attempt = 1; !migrated && !stopping; attempt++) {
        const pending = await pendingMigrations(config.DATABASE_URL).catch((err: Error) => [err.message]);
        if (pending.length === 0) migrated = true;
        else {
          if (attempt === 1 || attempt % 20 === 0) logger.warn({ pending, attempt }, 'waiting for database migrations');
          await sleep(Math.min(500 * attempt, 5000));
        }
      }
      if (stopping) return;
      consumer.start();
      retention.start();
    },
    closeSteps: (server) => [
      { name: 'http', close: () => closeServer(server) },
      {
        name: 'consumer',
        close: () => {
          stopping = true;
          return Promise.all([consumer.stop(), retention.stop()]);
        },
      },
      { name: 'redis', close: () => Promise.all([consumerRedis.quit(), redis.quit()]) },
      { name: 'postgres', close: () => pool.end() },
    ],
  };
}
