import { setTimeout as sleep } from 'node:timers/promises';
import { migrateUp } from '@gguf-gateway/db';
import {
  boundPort,
  closeServer,
  createLogger,
  createMetricsRegistry,
  createPgPool,
  createRedis,
  handleProcessErrors,
  handleShutdown,
  listen,
  loadConfigOrExit,
  loadPriceTable,
  postgresProblem,
  redisProblem,
} from '@gguf-gateway/shared';
import { createApp } from './app.js';
import { metricsConfigSchema } from './config.js';
import { UsageEventsRepository } from './usage-events.repository.js';
import { UsageRetention } from './usage-retention.service.js';
import { UsageStreamConsumer } from './usage-stream.consumer.js';
import { UsageStreamGroupRepository } from './usage-stream-group.repository.js';
import { createUsageMetrics } from './usage.metrics.js';

const config = loadConfigOrExit(metricsConfigSchema);
const logger = createLogger({ service: 'metrics', level: config.LOG_LEVEL });
handleProcessErrors(logger);

const prices = await loadPriceTable(config.PRICES_FILE);
// The consumer blocks on XREADGROUP and must wait out a Redis restart: a connection of its own.
const consumerRedis = createRedis(config.REDIS_URL, 'worker');
const redis = createRedis(config.REDIS_URL, 'request-path');
for (const r of [consumerRedis, redis]) r.on('error', (err) => logger.warn({ err }, 'redis error'));
const pool = createPgPool(config.DATABASE_URL);

const registry = createMetricsRegistry('metrics');
const metrics = createUsageMetrics(registry, () =>
  new UsageStreamGroupRepository(redis, config.REDIS_KEY_PREFIX).stats(),
);
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
const server = await listen(app, config.PORT, config.LISTEN_HOST);
logger.info({ port: boundPort(server) }, 'metrics listening');

let stopping = false;
handleShutdown(logger, [
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
]);

// Postgres may be down or being migrated by the orchestrator: stay up (readyz says so) and retry.
for (let attempt = 1; !migrated && !stopping; attempt++) {
  try {
    await migrateUp(config.DATABASE_URL, logger);
    migrated = true;
  } catch (err) {
    logger.warn({ err, attempt }, 'migrations failed; retrying');
    await sleep(Math.min(500 * attempt, 5000));
  }
}
if (!stopping) {
  consumer.start();
  retention.start();
}
