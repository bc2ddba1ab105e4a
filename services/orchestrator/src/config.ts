import { commonConfig, env, type ConfigOf } from '@gguf-gateway/shared';

export const orchestratorConfigSchema = {
  ...commonConfig,
  PORT: env.port(8099),
  DATA_DIR: env.path().optional(),
};

export type OrchestratorConfig = ConfigOf<typeof orchestratorConfigSchema>;
