import { Router } from 'express';
import { ApiError } from '@gguf-gateway/shared';
import type { InferenceService } from './inference.service.js';
import type { ListedModel, ModelRouter } from '../routing/model-router.js';
import type { RequestAuthorizer } from '../authorization/request-authorizer.js';
import { requireValidKey } from '../authorization/key-check.middleware.js';
import { jsonBody } from '../http/json-body.middleware.js';

export interface OpenAIRouterDeps {
  inference: InferenceService;
  router: ModelRouter;
  authorizer: RequestAuthorizer;
  bodyLimitBytes: number;
  jsonMaxDepth: number;
}

// Models are listed with a fixed creation time: the config has no dates, and clients only show it.
const CREATED = Math.floor(Date.now() / 1000);

// `status` (available|degraded|unavailable) and `alias_of` are extra fields; OpenAI clients ignore them.
function modelObject({ id, aliasOf, status }: ListedModel) {
  return { id, object: 'model', created: CREATED, owned_by: 'gguf-gateway', status, alias_of: aliasOf };
}

export function createOpenAIRouter(deps: OpenAIRouterDeps): Router {
  const { inference, router, authorizer } = deps;
  const api = Router();
  // The key is checked from the headers before a byte of the body is read or parsed.
  const body = [requireValidKey(authorizer), jsonBody(deps.bodyLimitBytes, deps.jsonMaxDepth)];

  api.post('/chat/completions', ...body, (req, res) => inference.handle('chat', req, res));
  api.post('/completions', ...body, (req, res) => inference.handle('completions', req, res));
  api.post('/embeddings', ...body, (req, res) => inference.handle('embeddings', req, res));

  api.get('/models', async (req, res) => {
    const { lease } = await authorizer.authorize(req, res, 'models', null);
    authorizer.settleOnClose(res, lease);
    res.json({ object: 'list', data: router.models().map(modelObject) });
  });

  // A wildcard: model names such as `org/model` reach here unencoded, as the OpenAI SDKs send them.
  api.get('/models/*id', async (req, res) => {
    const { lease } = await authorizer.authorize(req, res, 'models', null);
    authorizer.settleOnClose(res, lease);
    const id = (req.params.id as string[]).join('/');
    const model = router.models().find((m) => m.id === id);
    if (!model) {
      throw new ApiError(404, `The model '${id}' does not exist.`, { code: 'model_not_found', param: 'model' });
    }
    res.json(modelObject(model));
  });

  return api;
}
