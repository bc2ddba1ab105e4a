import {
  estimateModelMemory,
  GgufError,
  type GgufInfo,
  type MemoryEstimate,
  type MemoryPlanOptions,
} from '@gguf-gateway/gguf';
import { localModelPath, type LocalModelConfig, type Logger } from '@gguf-gateway/shared';
import type { ModelFilesRepository } from './model-files.repository.js';
import type { LlamaRouterClient, RouterModel } from './router.client.js';

// Which models exist: every GGUF in MODELS_DIR (named by its file), plus the backends file's
// `local:` entries, merged with what llama-server's router lists (its ids, aliases and the options
// each child gets). Headers are read once per file version; a file that is not a GGUF is listed as
// failed with the reason and never offered to the router.

export interface CatalogModel {
  name: string;
  /** The router's id for it: the body's `model` on requests proxied to the router. */
  routerId: string;
  aliases: string[];
  paths: string[];
  sizeBytes: number;
  architecture: string | null;
  quantization: string | null;
  contextLength: number | null;
  /** What serving it takes, by the planner; null when its header could not be read. */
  memory: MemoryEstimate | null;
  /** Why it cannot be served (not a GGUF, file missing); null when it can. */
  failure: string | null;
  /** Where the router and the gateway disagree, the router's status, else null. */
  routerStatus: string | null;
}

/**
 * Why a file cannot be read, as any API key may see it in `/v1/models`: the GGUF reader's words, or
 * the system error's code. A system error's message names the file's path, which only the log shows.
 */
function servedReason(err: unknown): string {
  if (err instanceof GgufError) return err.message;
  return (err as NodeJS.ErrnoException).code ?? 'read failed';
}

interface Header {
  info: GgufInfo | null;
  failure: string | null;
}

const FORCED_RELOAD_EVERY_MS = 1_000;

export interface CatalogOptions {
  /** Count only the offloaded layers' share (a GPU budget); on CPU everything counts. */
  gpu: boolean;
}

export class ModelCatalog {
  private models = new Map<string, CatalogModel>();
  private byName = new Map<string, CatalogModel>();
  private readonly headers = new Map<string, Header>();
  private refreshing: Promise<void> | null = null;
  private forcedReloadAt = 0;
  /** When the router's list the catalog holds was asked for (Date.now()); 0 before the first. */
  routerListedAt = 0;
  /** Whether the last refresh reached the router. */
  routerReached = false;

  constructor(
    private readonly files: ModelFilesRepository,
    private readonly routerClient: LlamaRouterClient,
    private readonly localEntries: () => readonly LocalModelConfig[],
    private readonly options: CatalogOptions,
    private readonly logger: Logger,
  ) {}

  /** By name or alias, from the last refresh. */
  find(name: string): CatalogModel | null {
    return this.byName.get(name) ?? null;
  }

  list(): CatalogModel[] {
    return [...this.models.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * By name or alias; an unknown name rescans the folder and has the router re-read it once
   * first, so that a model pulled a moment ago is found.
   */
  async resolve(name: string): Promise<CatalogModel | null> {
    const known = this.find(name);
    if (known) return known;
    // A new file makes the scan reload the router anyway; a forced reload (a preset edited) is
    // rationed, so that a flood of requests for names that do not exist is not a flood of reloads.
    const force = Date.now() - this.forcedReloadAt >= FORCED_RELOAD_EVERY_MS;
    if (force) this.forcedReloadAt = Date.now();
    await this.refresh({ reloadRouter: force });
    return this.find(name);
  }

  /** Rescans MODELS_DIR and the router's list; concurrent callers share one scan. */
  refresh(options: { reloadRouter?: boolean } = {}): Promise<void> {
    this.refreshing ??= this.scan(options.reloadRouter ?? false).finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  private async scan(reloadRouter: boolean): Promise<void> {
    const found = await this.files.scan();
    let routerModels = await this.routerList(reloadRouter);
    // A file the router has not seen yet (pulled since its last scan): it re-reads the folder once.
    const routerIds = new Set(routerModels?.map((m) => m.id));
    if (routerModels && !reloadRouter && found.some((f) => !routerIds.has(f.routerId))) {
      routerModels = (await this.routerList(true)) ?? routerModels;
    }
    this.routerReached = routerModels !== null;
    const fromRouter = new Map((routerModels ?? []).map((m) => [m.id, m]));

    const models = new Map<string, CatalogModel>();
    for (const file of found) {
      const header = await this.header(file.paths[0]!, file.version);
      models.set(file.name, this.model(file.name, file.routerId, file.paths, file.bytes, header, fromRouter, null));
    }
    for (const entry of this.localEntries()) {
      const path = localModelPath(entry, this.files.dir);
      const file = await this.files.file(path);
      const header: Header = file
        ? await this.header(path, file.version)
        : { info: null, failure: 'its file is not there' };
      models.set(entry.name, this.model(entry.name, entry.name, [path], file?.bytes ?? 0, header, fromRouter, entry));
    }
    // Models of the router's preset file that are not in MODELS_DIR (the default model given by an
    // absolute MODEL_PATH): served by their router id; planned from their file when this process can read it.
    const served = new Set([...models.values()].map((m) => m.routerId));
    for (const routed of routerModels ?? []) {
      if (routed.source !== 'preset' || served.has(routed.id) || models.has(routed.id)) continue;
      const path = routed.modelPath;
      const file = path ? await this.files.file(path) : null;
      const header: Header = file && path ? await this.header(path, file.version) : { info: null, failure: null };
      const paths = path ? [path] : [];
      models.set(routed.id, this.model(routed.id, routed.id, paths, file?.bytes ?? 0, header, fromRouter, null));
    }
    const byName = new Map<string, CatalogModel>();
    for (const model of models.values()) byName.set(model.name, model);
    // Aliases never shadow a model's own name.
    for (const model of models.values())
      for (const alias of model.aliases) if (!byName.has(alias)) byName.set(alias, model);
    this.models = models;
    this.byName = byName;
  }

  private model(
    name: string,
    routerId: string,
    paths: string[],
    bytes: number,
    header: Header,
    fromRouter: ReadonlyMap<string, RouterModel>,
    entry: LocalModelConfig | null,
  ): CatalogModel {
    const routed = fromRouter.get(routerId);
    const plan = { ...plannedOptions(entry), ...presetOptions(routed?.preset ?? null) };
    if (!this.options.gpu) delete plan.gpuLayers;
    return {
      name,
      routerId,
      aliases: [...new Set([...(entry?.aliases ?? []), ...(routed?.aliases ?? [])])].filter((a) => a !== name),
      paths,
      sizeBytes: bytes,
      architecture: header.info?.architecture ?? null,
      quantization: header.info?.quantization ?? null,
      contextLength: header.info?.contextLength ?? null,
      memory: header.info ? estimateModelMemory(header.info.metadata, bytes, plan) : null,
      failure: header.failure,
      routerStatus: routed?.status ?? null,
    };
  }

  private async header(path: string, version: string): Promise<Header> {
    const cached = this.headers.get(version);
    if (cached) return cached;
    let header: Header;
    try {
      header = { info: await this.files.readHeader(path), failure: null };
    } catch (err) {
      header = { info: null, failure: `not a readable GGUF file: ${servedReason(err)}` };
      this.logger.warn({ path, err }, 'model file is not served');
    }
    this.headers.set(version, header);
    return header;
  }

  private async routerList(reload: boolean): Promise<RouterModel[] | null> {
    const askedAt = Date.now();
    try {
      const models = await this.routerClient.list(reload);
      this.routerListedAt = askedAt;
      return models;
    } catch (err) {
      this.logger.warn(
        { err: (err as Error).message, cause: ((err as Error).cause as Error | undefined)?.message },
        'the models router did not list its models',
      );
      return null;
    }
  }
}

function plannedOptions(entry: LocalModelConfig | null): MemoryPlanOptions {
  const options: MemoryPlanOptions = {};
  if (entry?.llama.ctxSize !== undefined) options.ctxSize = entry.llama.ctxSize;
  if (entry?.llama.parallel !== undefined) options.parallel = entry.llama.parallel;
  if (entry?.llama.gpuLayers !== undefined) options.gpuLayers = entry.llama.gpuLayers;
  return options;
}

// Preset keys as the router writes them (the long flag without dashes), with the short forms an
// ini may use.
const PRESET_KEYS: Record<string, keyof MemoryPlanOptions> = {
  'ctx-size': 'ctxSize',
  c: 'ctxSize',
  parallel: 'parallel',
  np: 'parallel',
  'n-gpu-layers': 'gpuLayers',
  'gpu-layers': 'gpuLayers',
  ngl: 'gpuLayers',
};

/** The planner's options from the router's preset text for a model: what its child process will get. */
export function presetOptions(preset: string | null): MemoryPlanOptions {
  const options: MemoryPlanOptions = {};
  for (const line of (preset ?? '').split('\n')) {
    const match = /^\s*([A-Za-z-]+)\s*=\s*(-?\d+)\s*$/.exec(line);
    const key = match && PRESET_KEYS[match[1]!];
    if (key) options[key] = Number(match[2]);
  }
  return options;
}
