import { commonConfig, env, type ConfigOf } from '@gguf-gateway/shared';

export const metricsConfigSchema = {
  ...commonConfig,
  PORT: env.port(8095),
  REDIS_URL: env.url(),
  DATABASE_URL: env.url(),
};

export type MetricsConfig = ConfigOf<typeof metricsConfigSchema>;
