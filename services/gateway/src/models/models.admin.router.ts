import { Router } from 'express';
import type { LocalModel } from '../admin/local-models.repository.js';
import type { ModelsService, ModelView } from './models.service.js';

export interface ModelsAdminRouterDeps {
  models: ModelsService;
  /** The worker's records of pulled models (sha256, source, pulledAt); absent without DATABASE_URL. */
  pulled: (() => Promise<LocalModel[]>) | null;
}

/** Admin routes of models on demand, relative to /admin/v1 (behind the admin-key check). */
export function createModelsAdminRouter({ models, pulled }: ModelsAdminRouterDeps): Router {
  const router = Router();
  // Every model on disk with its status, and what the pull recorded about it where there is a record.
  router.get('/models', async (_req, res) => {
    const [views, records] = await Promise.all([models.list(), pulled ? pulled() : Promise.resolve([])]);
    const byPath = new Map(records.map((r) => [r.path, r]));
    res.json({ object: 'list', data: views.map((v) => adminView(v, byPath.get(v.paths[0]!))) });
  });
  router.post('/models/*name/load', async (req, res) => {
    res.json(await models.load(nameOf(req.params.name)));
  });
  router.post('/models/*name/unload', async (req, res) => {
    res.json(await models.unload(nameOf(req.params.name)));
  });
  router.delete('/models/*name', async (req, res) => {
    res.json(await models.remove(nameOf(req.params.name)));
  });
  return router;
}

/** `org/model` names arrive as several path segments. */
function nameOf(param: unknown): string {
  return Array.isArray(param) ? param.join('/') : String(param);
}

function adminView(view: ModelView, record: LocalModel | undefined) {
  const { paths, ...rest } = view;
  return {
    ...rest,
    path: paths[0] ?? null,
    bytes: view.sizeBytes,
    sha256: record?.sha256 ?? null,
    source: record?.source ?? null,
    pulledAt: record?.pulledAt ?? null,
  };
}
