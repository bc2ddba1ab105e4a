import express, { Router } from 'express';
import { ApiError } from '@gguf-gateway/shared';
import type { InferenceService } from './inference.service.js';
import type { ListedModel, ModelRouter } from '../routing/model-router.js';
import type { RequestAuthorizer } from '../authorization/request-authorizer.js';

export interface OpenAIRouterDeps {
  inference: InferenceService;
  router: ModelRouter;
  authorizer: RequestAuthorizer;
  bodyLimitBytes: number;
}

// Models are listed with a fixed creation time: the config has no dates, and clients only show it.
const CREATED = Math.floor(Date.now() / 1000);

// `status` (available|degraded|unavailable) and `alias_of` are extra fields; OpenAI clients ignore them.
function modelObject({ id, aliasOf, status }: ListedModel) {
  return { id, object: 'model', created: CREATED, owned_by: 'gguf-gateway', status, alias_of: aliasOf };
}

export function createOpenAIRouter({ inference, router, authorizer, bodyLimitBytes }: OpenAIRouterDeps): Router {
  const api = Router();
  const json = express.json({ limit: bodyLimitBytes });

  api.post('/chat/completions', json, (req, res) => inference.handle('chat', req, res));
  api.post('/completions', json, (req, res) => inference.handle('completions', req, res));
  api.post('/embeddings', json, (req, res) => inference.handle('embeddings', req, res));

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
