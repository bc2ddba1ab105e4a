import { hostname } from 'node:os';
import { commonConfig, env, z, type ConfigOf } from '@gguf-gateway/shared';

export const metricsConfigSchema = {
  ...commonConfig,
  PORT: env.port(8095),
  LISTEN_HOST: env.host(),
  REDIS_URL: env.url(),
  DATABASE_URL: env.url(),
  /** Price table shared with the auth service; without it every request costs 0. */
  PRICES_FILE: env.path().optional(),
  /** Raw usage events older than this are deleted; the daily rollup is kept. */
  USAGE_RETENTION_DAYS: env.int(90, 1),
  /** Most stream entries read and written to Postgres in one transaction. */
  USAGE_BATCH_SIZE: env.int(2000, 1),
  /** Entries left pending this long by a consumer that died are claimed by another. */
  USAGE_CLAIM_IDLE_MS: env.millis(30_000),
  /** Name of this consumer in the group; unique per replica (hostname by default, the container id). */
  USAGE_CONSUMER_NAME: z.string().min(1).default(hostname()),
  RETENTION_INTERVAL_MS: env.millis(3_600_000),
};

export type MetricsConfig = ConfigOf<typeof metricsConfigSchema>;
