import { Router } from 'express';
import { ApiError } from '@gguf-gateway/shared';
import type { ListedModel, ModelRouter } from '../routing/model-router.js';
import type { RequestAuthorizer } from '../authorization/request-authorizer.js';
import type { ModelsService, ModelView } from '../models/models.service.js';

export interface ModelsRouterDeps {
  router: ModelRouter;
  authorizer: RequestAuthorizer;
  /** Models on demand (MODELS_DIR through llama-server's router), listed after the backends file's. */
  models?: ModelsService | null;
}

// Models are listed with a fixed creation time: the config has no dates, and clients only show it.
const CREATED = Math.floor(Date.now() / 1000);

// `status` and `alias_of` (and `reason` for a failed model) are extra fields; OpenAI clients ignore them.
// Backends-file models: available|degraded|unavailable; models on demand: loaded|loading|available|failed.
function modelObject({ id, aliasOf, status }: ListedModel) {
  return { id, object: 'model', created: CREATED, owned_by: 'gguf-gateway', status, alias_of: aliasOf };
}

function onDemandObjects(view: ModelView) {
  const model = { object: 'model', created: CREATED, owned_by: 'gguf-gateway', status: view.status };
  const reason = view.reason === null ? {} : { reason: view.reason };
  return [
    { id: view.name, ...model, alias_of: null, ...reason },
    ...view.aliases.map((alias) => ({ id: alias, ...model, alias_of: view.name, ...reason })),
  ];
}

/** Every model served: the backends file's, then the models on disk (without those the file names). */
async function listed(router: ModelRouter, models: ModelsService | null) {
  const fromFile = router.models().map(modelObject);
  if (!models) return fromFile;
  const taken = new Set(fromFile.map((m) => m.id));
  const onDemand = (await models.list()).flatMap(onDemandObjects).filter((m) => !taken.has(m.id));
  return [...fromFile, ...onDemand];
}

/** `/v1/models`: what the backends file and MODELS_DIR serve. The inference routes are in api.router.ts. */
export function createModelsRouter({ router, authorizer, models = null }: ModelsRouterDeps): Router {
  const api = Router();

  api.get('/models', async (req, res) => {
    const { lease } = await authorizer.authorize(req, res, 'models', null);
    authorizer.settleOnClose(res, lease);
    res.json({ object: 'list', data: await listed(router, models) });
  });

  // A wildcard: model names such as `org/model` reach here unencoded, as the OpenAI SDKs send them.
  api.get('/models/*id', async (req, res) => {
    const { lease } = await authorizer.authorize(req, res, 'models', null);
    authorizer.settleOnClose(res, lease);
    const id = (req.params.id as string[]).join('/');
    const model = (await listed(router, models)).find((m) => m.id === id);
    if (!model) {
      throw new ApiError(404, `The model '${id}' does not exist.`, { code: 'model_not_found', param: 'model' });
    }
    res.json(model);
  });

  return api;
}
