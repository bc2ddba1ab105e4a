import { commonConfig, env, z, type ConfigOf } from '@gguf-gateway/shared';

export const gatewayConfigSchema = {
  ...commonConfig,
  PORT: env.port(8080),
  PORT_HEALTH: env.port(8081),
  REDIS_URL: env.url(),
  AUTH_URL: env.url(),
  BACKENDS_FILE: env.path(),
  INFERENCE_API_KEY: z.string().min(16).optional(),
};

export type GatewayConfig = ConfigOf<typeof gatewayConfigSchema>;
