import { commonConfig, env, type ConfigOf } from '@gguf-gateway/shared';

export const workerConfigSchema = {
  ...commonConfig,
  PORT: env.port(8096),
  REDIS_URL: env.url(),
  DATABASE_URL: env.url(),
  MODELS_DIR: env.path(),
};

export type WorkerConfig = ConfigOf<typeof workerConfigSchema>;
