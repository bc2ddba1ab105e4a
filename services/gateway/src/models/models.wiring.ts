import type { LocalModelConfig, Logger, Pool } from '@gguf-gateway/shared';
import type { Registry } from 'prom-client';
import { LocalModelsRepository } from '../admin/local-models.repository.js';
import type { GatewayConfig } from '../config.js';
import { readMemoryBudget } from './memory-budget.js';
import { ModelAdmission } from './model-admission.js';
import { ModelCatalog } from './model-catalog.js';
import { ModelFilesRepository } from './model-files.repository.js';
import { createModelUtilisationMetrics, createModelsMetrics } from './models.metrics.js';
import { ModelsService } from './models.service.js';
import { LlamaRouterClient } from './router.client.js';

export interface ModelsOnDemand {
  service: ModelsService;
  router: LlamaRouterClient;
}

/**
 * Models on demand (MODELS_ROUTER_URL set): the catalog of MODELS_DIR, admission and the router
 * client, composed once for buildGateway. Null without MODELS_ROUTER_URL: the gateway then serves
 * the backends file alone, as before.
 */
export function buildModelsOnDemand(
  config: GatewayConfig,
  deps: { registry: Registry; logger: Logger; pool: Pool | null; localModels: () => readonly LocalModelConfig[] },
): ModelsOnDemand | null {
  if (!config.MODELS_ROUTER_URL) return null;
  const { logger } = deps;
  if (!config.MODELS_DIR)
    logger.warn('MODELS_ROUTER_URL is set without MODELS_DIR: only backends-file local models are listed');
  const budget = readMemoryBudget(config, logger);
  logger.info({ device: budget.device, bytes: budget.bytes, source: budget.source }, 'models memory budget');
  const router = new LlamaRouterClient(
    new URL(config.MODELS_ROUTER_URL),
    config.INFERENCE_API_KEY,
    config.UPSTREAM_CONNECT_TIMEOUT_MS + config.UPSTREAM_FIRST_BYTE_TIMEOUT_MS,
  );
  const files = new ModelFilesRepository(config.MODELS_DIR ?? '/nonexistent-models-dir');
  const catalog = new ModelCatalog(files, router, deps.localModels, { gpu: budget.device === 'cuda' }, logger);
  const pinned = new Set<string>();
  const admission = new ModelAdmission(
    router,
    {
      maxLoaded: config.MODELS_MAX_LOADED,
      memoryBytes: budget.bytes,
      capacityWaitMs: config.MODEL_CAPACITY_WAIT_MS,
      loadTimeoutMs: config.MODEL_LOAD_TIMEOUT_MS,
      idleUnloadMs: config.MODEL_IDLE_UNLOAD_SEC * 1000,
      pinned,
    },
    createModelsMetrics(deps.registry),
  );
  const service = new ModelsService(
    catalog,
    admission,
    files,
    {
      name: 'models-router',
      kind: 'llamacpp',
      url: new URL(config.MODELS_ROUTER_URL),
      apiKey: config.INFERENCE_API_KEY,
      apiKeyEnv: undefined,
      model: undefined,
      maxInFlight: undefined,
      utilizationUrl: undefined,
    },
    { names: config.MODELS_PINNED, resolved: pinned },
    deps.pool ? new LocalModelsRepository(deps.pool) : null,
    logger,
    (routerId) => router.slots(routerId),
  );
  createModelUtilisationMetrics(deps.registry, () => service.utilisation());
  return { service, router };
}
