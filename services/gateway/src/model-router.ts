import type { BackendConfig, BackendKind, BackendsFile } from './backends-file.parser.js';

// Model name -> backend. Here the first backend of a model's first tier serves it; multi-backend
// routing (tiers, least busy, fallbacks, cool-down) replaces this module without touching callers.

export interface Backend {
  name: string;
  kind: BackendKind;
  /** Server root: `/v1/...` paths are appended to it. */
  url: URL;
  /** Sent as `Authorization: Bearer` to the backend, never the client's key. */
  apiKey: string | undefined;
  /** The model name the backend expects, when it differs from the public one. */
  model: string | undefined;
}

export interface ModelRoute {
  /** The public (canonical) model name, also when the client used an alias. */
  model: string;
  backend: Backend;
}

export interface ListedModel {
  id: string;
  /** The canonical name when `id` is an alias. */
  aliasOf: string | null;
}

export type BackendKeyResolver = (backend: BackendConfig) => string | undefined;

export class ModelRouter {
  private readonly routes = new Map<string, ModelRoute>();
  private readonly listed: ListedModel[] = [];
  private readonly backendList: Backend[];

  constructor(file: BackendsFile, backendKey: BackendKeyResolver) {
    const backends = new Map(
      file.backends.map((b) => [
        b.name,
        { name: b.name, kind: b.kind, url: new URL(b.url), apiKey: backendKey(b), model: b.model },
      ]),
    );
    this.backendList = [...backends.values()];
    for (const model of file.models) {
      const backend = backends.get(model.tiers[0]![0]!)!;
      const route = { model: model.name, backend };
      this.routes.set(model.name, route);
      this.listed.push({ id: model.name, aliasOf: null });
      for (const alias of model.aliases) {
        this.routes.set(alias, route);
        this.listed.push({ id: alias, aliasOf: model.name });
      }
    }
  }

  resolve(name: string): ModelRoute | null {
    return this.routes.get(name) ?? null;
  }

  models(): readonly ListedModel[] {
    return this.listed;
  }

  /** The backends that serve at least one model (readiness polls these). */
  backends(): readonly Backend[] {
    const used = new Set([...this.routes.values()].map((r) => r.backend));
    return this.backendList.filter((b) => used.has(b));
  }
}
