import type { BackendState } from '../routing/backend-state.js';
import type { ModelRoute, ModelRouter } from '../routing/model-router.js';
import type { ApiRoute } from './api-routes.js';

// What a request's routing needs from the table beyond its model's route: which backends can serve
// the route (worked out once per routing table, not per request) and the model a client may leave out.

/** The model a llama-server route's client may leave out: the one the gateway serves, when it serves one. */
export function onlyModel(router: ModelRouter): string | null {
  const models = router.models().filter((m) => m.aliasOf === null);
  return models.length === 1 ? models[0]!.id : null;
}

export interface Fit {
  /** The model's backends of a kind that does not serve the route. */
  unfit: ReadonlySet<BackendState>;
  /** No backend of the model serves the route. */
  none: boolean;
}

/** Per routing table (a reload makes new routes): worked out once per model and route, not per request. */
const fitByRoute = new WeakMap<ModelRoute, Map<ApiRoute, Fit>>();

export function backendsFit(target: ModelRoute, route: ApiRoute): Fit {
  let byRoute = fitByRoute.get(target);
  if (!byRoute) fitByRoute.set(target, (byRoute = new Map()));
  let fit = byRoute.get(route);
  if (!fit) {
    const all = target.tiers.flat();
    const unfit = new Set(all.filter((b) => !route.kinds.includes(b.backend.kind)));
    fit = { unfit, none: all.every((b) => unfit.has(b)) };
    byRoute.set(route, fit);
  }
  return fit;
}
