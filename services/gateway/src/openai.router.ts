import express, { Router } from 'express';
import { ApiError } from '@gguf-gateway/shared';
import type { InferenceService } from './inference.service.js';
import type { ModelRouter } from './model-router.js';
import type { RequestAuthorizer } from './request-authorizer.js';

export interface OpenAIRouterDeps {
  inference: InferenceService;
  router: ModelRouter;
  authorizer: RequestAuthorizer;
  bodyLimitBytes: number;
}

// Models are listed with a fixed creation time: the config has no dates, and clients only show it.
const CREATED = Math.floor(Date.now() / 1000);

function modelObject(id: string) {
  return { id, object: 'model', created: CREATED, owned_by: 'gguf-gateway' };
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
    res.json({ object: 'list', data: router.models().map((m) => modelObject(m.id)) });
  });

  api.get('/models/:id', async (req, res) => {
    const { lease } = await authorizer.authorize(req, res, 'models', null);
    authorizer.settleOnClose(res, lease);
    const id = req.params.id;
    if (!router.resolve(id)) {
      throw new ApiError(404, `The model '${id}' does not exist.`, { code: 'model_not_found', param: 'model' });
    }
    res.json(modelObject(id));
  });

  return api;
}
