import { BackendsFileError, type BackendConfig, type BackendsFile, type LocalModelConfig } from '@gguf-gateway/shared';
import { BackendState, type Backend, type BreakerSettings } from './backend-state.js';

export type { Backend } from './backend-state.js';

// Model name -> ordered tiers of backends. A request takes the least busy available backend of the
// first tier that has one; a retry takes the next one. A reload builds a whole new table and swaps
// it in one assignment: a request keeps the route it resolved, and backends that keep their name
// and URL keep their state (in-flight counts, breaker).

export interface ModelRoute {
  /** The public (canonical) model name, also when the client used an alias. */
  model: string;
  tiers: readonly (readonly BackendState[])[];
}

export type ModelStatus = 'available' | 'degraded' | 'unavailable';

export interface ListedModel {
  id: string;
  /** The canonical name when `id` is an alias. */
  aliasOf: string | null;
  /** available: every backend healthy; degraded: some; unavailable: none. */
  status: ModelStatus;
}

export interface Pick {
  state: BackendState;
  /** 0 for the primary tier, 1 for the first fallback... */
  tier: number;
}

/** The backend's key, or undefined when it has none; throws when a named variable is not set. */
export type BackendKeyResolver = (backend: BackendConfig) => string | undefined;

interface RoutingTable {
  routes: Map<string, ModelRoute>;
  names: { id: string; aliasOf: string | null; route: ModelRoute }[];
  states: BackendState[];
}

export class ModelRouter {
  private table: RoutingTable;
  /** The file's `local:` entries (served by the models router, not routed here). */
  private locals: readonly LocalModelConfig[];
  /** Rotates among equally busy backends, so idle ones share the traffic. */
  private turn = 0;

  constructor(
    file: BackendsFile,
    private readonly backendKey: BackendKeyResolver,
    private readonly breaker: BreakerSettings = { failureThreshold: 3, cooldownMs: 10_000 },
    private readonly onStateChange?: (state: BackendState, problem: string | null) => void,
  ) {
    this.table = this.build(file);
    this.locals = file.localModels;
  }

  /** Swaps in a new file's table; throws (and keeps the current one) when the file cannot be served. */
  replace(file: BackendsFile): void {
    this.table = this.build(file);
    this.locals = file.localModels;
  }

  /** The backends file's `local:` model entries, as of its last good load. */
  localModels(): readonly LocalModelConfig[] {
    return this.locals;
  }

  resolve(name: string): ModelRoute | null {
    return this.table.routes.get(name) ?? null;
  }

  /** The next backend to try: the least busy available one of the first tier that has one. */
  pick(route: ModelRoute, tried: ReadonlySet<BackendState>): Pick | null {
    for (const [tier, backends] of route.tiers.entries()) {
      const open = backends.filter((b) => b.available && !tried.has(b));
      if (open.length === 0) continue;
      const least = Math.min(...open.map((b) => b.load()));
      const idlest = open.filter((b) => b.load() === least);
      this.turn = (this.turn + 1) % 1_000_000;
      return { state: idlest[this.turn % idlest.length]!, tier };
    }
    return null;
  }

  /** Whether a backend other than the tried ones could take the request now. */
  hasCandidate(route: ModelRoute, tried: ReadonlySet<BackendState>): boolean {
    return route.tiers.some((tier) => tier.some((b) => b.available && !tried.has(b)));
  }

  /** When the first of a route's cooled-down backends may come back (epoch ms), for Retry-After. */
  nextRetryAt(route: ModelRoute): number {
    const times = route.tiers
      .flat()
      .map((b) => b.retryAt)
      .filter((t) => t > 0);
    return times.length > 0 ? Math.min(...times) : Date.now();
  }

  models(): ListedModel[] {
    return this.table.names.map(({ id, aliasOf, route }) => ({ id, aliasOf, status: routeStatus(route) }));
  }

  /** The backends that serve at least one model (the monitor polls these). */
  backends(): readonly BackendState[] {
    return this.table.states;
  }

  private build(file: BackendsFile): RoutingTable {
    const previous = new Map((this.table?.states ?? []).map((s) => [s.name, s]));
    const problems: string[] = [];
    const states = new Map<string, BackendState>();
    for (const config of file.backends) {
      let apiKey: string | undefined;
      try {
        apiKey = this.backendKey(config);
      } catch (err) {
        problems.push(`backends.${config.name}.apiKeyEnv: ${(err as Error).message}`);
        continue;
      }
      const backend = toBackend(config, apiKey);
      const kept = previous.get(config.name);
      if (kept && kept.backend.url.href === backend.url.href && kept.backend.kind === backend.kind) {
        kept.backend = backend;
        states.set(config.name, kept);
      } else {
        states.set(config.name, new BackendState(backend, this.breaker, this.onStateChange));
      }
    }
    if (problems.length > 0) throw new BackendsFileError(problems);

    const routes = new Map<string, ModelRoute>();
    const names: RoutingTable['names'] = [];
    for (const model of file.models) {
      const route = { model: model.name, tiers: model.tiers.map((tier) => tier.map((name) => states.get(name)!)) };
      routes.set(model.name, route);
      names.push({ id: model.name, aliasOf: null, route });
      for (const alias of model.aliases) {
        routes.set(alias, route);
        names.push({ id: alias, aliasOf: model.name, route });
      }
    }
    const used = new Set([...routes.values()].flatMap((r) => r.tiers.flat()));
    return { routes, names, states: [...states.values()].filter((s) => used.has(s)) };
  }
}

function toBackend(config: BackendConfig, apiKey: string | undefined): Backend {
  return {
    name: config.name,
    kind: config.kind,
    url: new URL(config.url),
    apiKey,
    apiKeyEnv: config.apiKeyEnv,
    model: config.model,
    maxInFlight: config.maxInFlight,
    utilizationUrl: config.utilizationUrl ? new URL(config.utilizationUrl) : undefined,
  };
}

function routeStatus(route: ModelRoute): ModelStatus {
  const all = route.tiers.flat();
  const healthy = all.filter((b) => b.health === 'healthy').length;
  if (healthy === all.length) return 'available';
  return healthy === 0 ? 'unavailable' : 'degraded';
}
