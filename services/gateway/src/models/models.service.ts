import type { Response } from 'express';
import { ApiError, serviceUnavailable, type Logger } from '@gguf-gateway/shared';
import { BackendState, type Backend } from '../routing/backend-state.js';
import type { ModelRoute } from '../routing/model-router.js';
import type { ModelAdmission, AdmittedModel, Release } from './model-admission.js';
import type { CatalogModel, ModelCatalog } from './model-catalog.js';
import type { ModelFilesRepository } from './model-files.repository.js';
import type { SlotCount } from './router.client.js';

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

/** How busy one catalog model is now, for the dashboards. */
export interface ModelUtilisation {
  model: string;
  /** Requests holding a slot in admission (from acquire until their response ended). */
  inFlight: number;
  /** Its process's slots at the last sync; 0 of 0 when it is not loaded (or they could not be read). */
  slots: SlotCount;
}

/** Reads a loaded model's slots from the router (GET /slots?model=<id>). */
export type SlotsReader = (routerId: string) => Promise<SlotCount>;

/** Removes the `models` row of a deleted file (the worker's record of the pull); absent without DATABASE_URL. */
export interface PulledModelsRecord {
  removeByPath(paths: readonly string[]): Promise<void>;
}

// Requests through the router: the breaker never trips on one request's failure (each request gets
// its own state); the router's health is the readiness check.
const REQUEST_BREAKER = { failureThreshold: Number.MAX_SAFE_INTEGER, cooldownMs: 0 };
const SYNC_MS = 2_000;
const NO_SLOTS: SlotCount = { busy: 0, total: 0 };

export class ModelsService {
  private syncTimer: NodeJS.Timeout | null = null;
  /** Pinned models being loaded again by reloadPinned. */
  private readonly reloading = new Set<string>();
  /** The last reason each pinned model did not load again, logged once. */
  private readonly reloadProblems = new Map<string, string>();
  /** Each loaded model's slots at the last sync, by model name. */
  private readonly slots = new Map<string, SlotCount>();

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
    /** Null: slots are not read (each model reports 0 of 0). */
    private readonly readSlots: SlotsReader | null = null,
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
    // The client may have left already (while its key was checked): its 'close' is then past.
    if (res.destroyed) gone.abort();
    return this.admission.acquire(model, gone.signal).finally(() => res.off('close', onClose));
  }

  /**
   * The router answered a request for this model "model is not loaded" (its process died between
   * two syncs): admission forgets it was loaded, so the next acquire loads it again. For the
   * request that got the answer to retry it once, with a new acquire, before any byte reached its client.
   */
  notLoaded(model: AdmittedModel): void {
    this.logger.warn(
      { model: model.name },
      'llama-server says a model the gateway had loaded is not loaded: loading it again',
    );
    this.admission.lost(model.name);
  }

  /** Admission's view of one model: load state and requests in flight. */
  state(name: string): ReturnType<ModelAdmission['state']> {
    return this.admission.state(name);
  }

  /**
   * Every catalog model's requests in flight and busy slots: a model that left the catalog is no
   * longer listed, so the dashboards' labels stay as few as the models on disk.
   */
  utilisation(): ModelUtilisation[] {
    return this.catalog.list().map((m) => ({
      model: m.name,
      inFlight: this.admission.state(m.name).inFlight,
      slots: this.slots.get(m.name) ?? NO_SLOTS,
    }));
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
    // An alias is shared ("default", MODEL_ALIASES): deleting through it would remove a file its user never named.
    if (model.name !== name) {
      throw new ApiError(400, `'${name}' is an alias of the model '${model.name}': delete the model by its name.`, {
        code: 'model_alias',
        param: 'name',
      });
    }
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
    if (model.paths.length === 0 || !model.paths.every((p) => this.files.holds(p))) {
      throw new ApiError(
        409,
        `The model '${model.name}' is outside MODELS_DIR (a backends-file entry): remove it there.`,
        {
          code: 'model_not_removable',
        },
      );
    }
    // From here until the files are gone, a request for it gets 404 rather than loading a file being deleted.
    if (!this.admission.retire(admitted(model))) {
      throw new ApiError(409, `The model '${model.name}' is in use: unload it first.`, { code: 'model_loaded' });
    }
    try {
      await this.files.remove(model.paths);
      await this.record?.removeByPath(model.paths);
    } finally {
      this.admission.forget(model.name);
    }
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
      await this.syncSlots(models);
      if (!pinnedStarted) {
        pinnedStarted = true;
        void this.loadPinned();
      } else {
        this.reloadPinned();
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

  /**
   * Reads the slots of every loaded model: through the router, /slots answers per model only, so
   * Prometheus (which scrapes one model's /metrics) cannot see the others'. A model not loaded, or
   * whose slots could not be read, has none.
   */
  private async syncSlots(models: readonly CatalogModel[]): Promise<void> {
    const read = this.readSlots;
    const loaded = read ? models.filter((m) => this.admission.state(m.name).state === 'loaded') : [];
    const counts = await Promise.all(
      loaded.map((m) =>
        read!(m.routerId).then(
          (slots) => [m.name, slots] as const,
          () => null,
        ),
      ),
    );
    this.slots.clear();
    for (const count of counts) if (count) this.slots.set(...count);
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

  /**
   * Loads again a pinned model that is no longer loaded (its process died, llama-server restarted),
   * as a request would: a load that failed is retried only after admission's pause, never in a loop.
   */
  private reloadPinned(): void {
    for (const name of this.pinned.resolved) {
      const model = this.catalog.find(name);
      if (!model || this.admission.state(name).state !== 'unloaded' || this.reloading.has(name)) continue;
      this.reloading.add(name);
      this.admission
        .acquire(admitted(model))
        .then((release) => {
          release();
          this.reloadProblems.delete(name);
        })
        .catch((err: Error) => {
          // Admission refuses a failed load for a while: say so once, not at every sync.
          if (this.reloadProblems.get(name) === err.message) return;
          this.reloadProblems.set(name, err.message);
          this.logger.warn({ model: name, err: err.message }, 'pinned model did not load again');
        })
        .finally(() => this.reloading.delete(name));
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
