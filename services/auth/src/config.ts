import { commonConfig, env, type ConfigOf } from '@gguf-gateway/shared';

export const authConfigSchema = {
  ...commonConfig,
  PORT: env.port(8090),
  REDIS_URL: env.url(),
  API_KEYS_FILE: env.path(),
};

export type AuthConfig = ConfigOf<typeof authConfigSchema>;
