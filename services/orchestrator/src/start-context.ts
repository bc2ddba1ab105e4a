import { dirname, join } from 'node:path';
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
  /** Beside the arguments file: llama-server's router reads both from the same volume. */
  modelsPresetFile: string;
  /** The gateway's MODELS_MEMORY_FILE. */
  memoryBudgetFile: string;
  keysFile: string;
}

export function resolveDirs(
  config: OrchestratorConfig,
): Pick<
  StartContext,
  'dataDir' | 'modelsDir' | 'llamaArgsFile' | 'modelsPresetFile' | 'memoryBudgetFile' | 'keysFile'
> {
  const dataDir = resolveDataDir(config.DATA_DIR);
  const llamaArgsFile = config.LLAMA_ARGS_FILE ?? join(dataDir, 'llama-server.args');
  return {
    dataDir,
    modelsDir: config.MODELS_DIR ?? join(dataDir, 'models'),
    llamaArgsFile,
    modelsPresetFile: join(dirname(llamaArgsFile), 'llama-server.models.ini'),
    memoryBudgetFile: join(dirname(llamaArgsFile), 'memory-budget.json'),
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
    defaultModelAliases: c.MODEL_ALIASES.split(',')
      .map((alias) => alias.trim())
      .filter(Boolean),
    modelsPresetFile: ctx.modelsPresetFile,
    memoryBudgetFile: ctx.memoryBudgetFile,
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
