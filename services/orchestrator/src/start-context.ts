import { join } from 'node:path';
import type { Logger } from '@gguf-gateway/shared';
import type { Registry } from 'prom-client';
import type { OrchestratorConfig } from './config.js';
import { defaultKeysFile, resolveDataDir } from './data-dir.js';
import type { StartSettings } from './gates/start-gates.js';
import type { StatusMetrics } from './status.metrics.js';

/** What both modes share: config, logger, metrics and the resolved directories. */
export interface StartContext {
  config: OrchestratorConfig;
  logger: Logger;
  registry: Registry;
  metrics: StatusMetrics;
  dataDir: string;
  modelsDir: string;
  llamaArgsFile: string;
  keysFile: string;
}

export function resolveDirs(
  config: OrchestratorConfig,
): Pick<StartContext, 'dataDir' | 'modelsDir' | 'llamaArgsFile' | 'keysFile'> {
  const dataDir = resolveDataDir(config.DATA_DIR);
  return {
    dataDir,
    modelsDir: config.MODELS_DIR ?? join(dataDir, 'models'),
    llamaArgsFile: config.LLAMA_ARGS_FILE ?? join(dataDir, 'llama-server.args'),
    keysFile: config.API_KEYS_FILE ?? defaultKeysFile(dataDir),
  };
}

export function startSettings(ctx: StartContext, databaseUrl: string, redisUrl: string): StartSettings {
  const { config: c } = ctx;
  return {
    databaseUrl,
    redisUrl,
    redisKeyPrefix: c.REDIS_KEY_PREFIX,
    keysFile: ctx.keysFile,
    backendsFile: c.BACKENDS_FILE,
    modelsDir: ctx.modelsDir,
    modelPath: c.MODEL_PATH,
    modelRepo: c.MODEL_REPO,
    modelFile: c.MODEL_FILE,
    modelRevision: c.MODEL_REVISION,
    nvidiaSmi: c.NVIDIA_SMI,
    llamaArgsFile: ctx.llamaArgsFile,
    overrides: {
      nGpuLayers: c.LLAMA_N_GPU_LAYERS,
      ctxSize: c.LLAMA_CTX_SIZE,
      parallel: c.LLAMA_PARALLEL,
      threads: c.LLAMA_THREADS,
    },
    gateTimeoutMs: c.GATE_TIMEOUT_MS,
    modelPullTimeoutMs: c.MODEL_PULL_TIMEOUT_MS,
  };
}
