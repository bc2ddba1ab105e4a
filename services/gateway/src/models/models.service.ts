import type { Response } from 'express';
import { ApiError, serviceUnavailable, type Logger } from '@gguf-gateway/shared';
import { BackendState, type Backend } from '../routing/backend-state.js';
import type { ModelRoute } from '../routing/model-router.js';
import type { ModelAdmission, AdmittedModel, Release } from './model-admission.js';
import type { CatalogModel, ModelCatalog } from './model-catalog.js';
import type { ModelFilesRepository } from './model-files.repository.js';

// Models on demand, as the rest of the gateway sees them: find a model by name, take a slot on it
// for one request (loading it if needed), list every model with its status, and the admin
// operations. Requests for a catalog model go to llama-server's router with its id as `model`.

export type ModelStatus = 'loaded' | 'loading' | 'available' | 'failed';

export interface ModelView {
  name: string;
  aliases: string[];
  status: ModelStatus;
  /** Why it is failed. */
  reason: string | null;
  sizeBytes: number;
  quantization: string | null;
  architecture: string | null;
  contextLength: number | null;
  /** The planner's figure for it (weights + KV cache + overhead); null when unreadable. */
  memoryBytes: number | null;
  lastUsedAt: string | null;
  paths: string[];
}

/** A catalog model resolved for one request: the route to the router, and what admission needs. */
export interface CatalogTarget {
  route: ModelRoute;
  model: AdmittedModel;
  /** Why it cannot be served (a file that is not a GGUF): thrown once the request is authorized. */
  problem: ApiError | null;
}

/** Removes the `models` row of a deleted file (the worker's record of the pull); absent without DATABASE_URL. */
export interface PulledModelsRecord {
  removeByPath(paths: readonly string[]): Promise<void>;
}

// Requests through the router: the breaker never trips on one request's failure (each request gets
// its own state); the router's health is the readiness check.
const REQUEST_BREAKER = { failureThreshold: Number.MAX_SAFE_INTEGER, cooldownMs: 0 };
const SYNC_MS = 2_000;

export class ModelsService {
  private syncTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly catalog: ModelCatalog,
    private readonly admission: ModelAdmission,
    private readonly files: ModelFilesRepository,
    /** llama-server's router as a backend (its URL and key); `model` is set per model. */
    private readonly routerBackend: Backend,
    /** MODELS_PINNED as given (names or aliases), and the set admission reads: their model names. */
    private readonly pinned: { names: readonly string[]; resolved: Set<string> },
    private readonly record: PulledModelsRecord | null,
    private readonly logger: Logger,
  ) {}

  /** The route for a model name or alias served by the router; null when no such model exists. */
  async target(name: string): Promise<CatalogTarget | null> {
    const model = await this.catalog.resolve(name);
    if (!model) return null;
    const backend: Backend = { ...this.routerBackend, model: model.routerId };
    return {
      route: { model: model.name, tiers: [[new BackendState(backend, REQUEST_BREAKER)]] },
      model: admitted(model),
      problem:
        model.failure === null
          ? null
          : serviceUnavailable(`The model '${model.name}' cannot be served: ${model.failure}.`, 3600, 'model_failed'),
    };
  }

  /** A slot on the model for this response; given back by the caller when the response has ended. */
  acquire(model: AdmittedModel, res: Response): Promise<Release> {
    const gone = new AbortController();
    const onClose = () => gone.abort();
    res.once('close', onClose);
    return this.admission.acquire(model, gone.signal).finally(() => res.off('close', onClose));
  }

  /** Admission's view of one model: load state and requests in flight. */
  state(name: string): ReturnType<ModelAdmission['state']> {
    return this.admission.state(name);
  }

  async list(): Promise<ModelView[]> {
    await this.catalog.refresh();
    return this.catalog.list().map((m) => this.view(m));
  }

  async load(name: string): Promise<ModelView> {
    const model = await this.found(name);
    if (model.failure !== null)
      throw new ApiError(409, `The model '${model.name}' cannot be loaded: ${model.failure}.`, {
        code: 'model_failed',
      });
    await this.admission.load(admitted(model));
    return this.view(model);
  }

  async unload(name: string): Promise<ModelView> {
    const model = await this.found(name);
    await this.admission.unload(model.name, 'admin');
    return this.view(model);
  }

  /** Deletes the model's files (and its pull record); 409 while loaded, loading or being pulled. */
  async remove(name: string): Promise<{ name: string; deleted: true; paths: string[] }> {
    const model = await this.found(name);
    const { state } = this.admission.state(model.name);
    if (state !== 'unloaded') {
      throw new ApiError(409, `The model '${model.name}' is ${state}: unload it first.`, { code: 'model_loaded' });
    }
    const pulling = model.paths.find((p) => this.files.beingPulled(p.slice(p.lastIndexOf('/') + 1)));
    if (pulling) {
      throw new ApiError(409, `The model '${model.name}' is being pulled; cancel the pull first.`, {
        code: 'model_pulling',
      });
    }
    if (!model.paths.every((p) => p.startsWith(`${this.files.dir.replace(/\/+$/, '')}/`))) {
      throw new ApiError(
        409,
        `The model '${model.name}' is outside MODELS_DIR (a backends-file entry): remove it there.`,
        {
          code: 'model_not_removable',
        },
      );
    }
    await this.files.remove(model.paths);
    await this.record?.removeByPath(model.paths);
    this.admission.forget(model.name);
    await this.catalog.refresh({ reloadRouter: true });
    this.logger.info({ model: model.name }, 'model deleted');
    return { name: model.name, deleted: true, paths: model.paths };
  }

  /** Follows the router (a process that died, models loaded before this start) and loads pinned models. */
  start(): void {
    // Pinned models load after the first sync that reached the router (their names need the catalog).
    let pinnedStarted = false;
    const sync = async () => {
      await this.catalog.refresh();
      if (!this.catalog.routerReached) return;
      const models = this.catalog.list().filter((m) => m.failure === null);
      const running = new Set(
        models.filter((m) => ['loaded', 'loading', 'sleeping'].includes(m.routerStatus ?? '')).map((m) => m.routerId),
      );
      this.admission.reconcile(models.map(admitted), running, this.catalog.routerListedAt);
      if (!pinnedStarted) {
        pinnedStarted = true;
        void this.loadPinned();
      }
    };
    const tick = () => {
      sync()
        .catch((err: unknown) => this.logger.warn({ err }, 'models sync failed'))
        .finally(() => {
          if (this.syncTimer) this.syncTimer = setTimeout(tick, SYNC_MS).unref();
        });
    };
    this.syncTimer = setTimeout(tick, 0).unref();
    this.admission.start();
  }

  stop(): void {
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    this.admission.stop();
  }

  private async loadPinned(): Promise<void> {
    for (const name of this.pinned.names) {
      const model = this.catalog.find(name);
      if (!model || model.failure !== null) {
        this.logger.warn({ model: name }, 'a pinned model is not in MODELS_DIR (or cannot be served)');
        continue;
      }
      this.pinned.resolved.add(model.name);
      await this.admission
        .load(admitted(model))
        .catch((err: Error) => this.logger.warn({ model: name, err: err.message }, 'pinned model did not load'));
    }
  }

  private async found(name: string): Promise<CatalogModel> {
    const model = await this.catalog.resolve(name);
    if (!model)
      throw new ApiError(404, `The model '${name}' does not exist.`, { code: 'model_not_found', param: 'model' });
    return model;
  }

  private view(model: CatalogModel): ModelView {
    const admitted = this.admission.state(model.name);
    const failure = model.failure ?? admitted.failure;
    const status: ModelStatus =
      model.failure !== null
        ? 'failed'
        : admitted.state === 'loaded' || admitted.state === 'unloading'
          ? 'loaded'
          : admitted.state === 'loading'
            ? 'loading'
            : failure !== null
              ? 'failed'
              : 'available';
    return {
      name: model.name,
      aliases: model.aliases,
      status,
      reason: status === 'failed' ? failure : null,
      sizeBytes: model.sizeBytes,
      quantization: model.quantization,
      architecture: model.architecture,
      contextLength: model.contextLength,
      memoryBytes: model.memory?.totalBytes ?? null,
      lastUsedAt: admitted.lastUsedAt === null ? null : new Date(admitted.lastUsedAt).toISOString(),
      paths: model.paths,
    };
  }
}

function admitted(model: CatalogModel): AdmittedModel {
  return { name: model.name, routerId: model.routerId, bytes: model.memory?.totalBytes ?? model.sizeBytes };
}
