import { Router, type RequestHandler } from 'express';
import { ApiError } from '@gguf-gateway/shared';
import type { AuthClient } from '../authorization/auth.client.js';
import type { RequestAuthorizer } from '../authorization/request-authorizer.js';
import { createModelPullsRouter } from './model-pulls.router.js';
import type { ModelPullsService } from './model-pulls.service.js';
import { unavailableRouter } from './unavailable.router.js';
import { createUsageRouter } from './usage.router.js';
import { createModelsAdminRouter } from '../models/models.admin.router.js';
import type { ModelsService } from '../models/models.service.js';
import type { UsageService } from './usage.service.js';
import { closeIfBodyUnread } from '../authorization/key-check.middleware.js';
import { jsonBody } from '../http/json-body.middleware.js';

export interface AdminRouterDeps {
  auth: AuthClient;
  authorizer: RequestAuthorizer;
  bodyLimitBytes: number;
  jsonMaxDepth: number;
  /** Model pulls and local models, and usage totals: both need DATABASE_URL, null without it. */
  pulls: ModelPullsService | null;
  usage: UsageService | null;
  /** Models on demand: the models listing with status, load, unload and delete (null without MODELS_ROUTER_URL). */
  models?: ModelsService | null;
}

const NEEDS_DATABASE =
  'The admin API for usage and models needs DATABASE_URL on the gateway (the Postgres of the metrics service).';

/** Only keys with `scope=admin` get past this (authorized before any body is read). */
export function requireAdmin(authorizer: RequestAuthorizer): RequestHandler {
  return async (req, res, next) => {
    try {
      const decision = await authorizer.authorize(req, res, 'admin', null);
      authorizer.settleOnClose(res, decision.lease);
      if (!decision.scopes.includes('admin')) {
        throw new ApiError(403, 'This key does not have the admin scope.', { code: 'insufficient_scope' });
      }
    } catch (err) {
      closeIfBodyUnread(req, res);
      throw err;
    }
    next();
  };
}

/** `/admin/v1`: every route behind the admin-scope check. */
export function createAdminRouter(deps: AdminRouterDeps): Router {
  const { auth, authorizer, pulls, usage } = deps;
  const admin = Router();
  admin.use(requireAdmin(authorizer));
  admin.use(jsonBody(deps.bodyLimitBytes, deps.jsonMaxDepth));
  admin.post('/keys/reload', async (_req, res) => {
    res.json(await auth.reloadKeys(res.getHeader('x-request-id') as string));
  });
  admin.use(usage ? createUsageRouter({ usage }) : unavailableRouter(['/usage'], NEEDS_DATABASE));
  // Before the pulls router: with models on demand, GET /models lists every model on disk.
  if (deps.models)
    admin.use(createModelsAdminRouter({ models: deps.models, pulled: pulls ? () => pulls.listModels() : null }));
  admin.use(
    pulls
      ? createModelPullsRouter({ pulls })
      : unavailableRouter(['/models', '/models/pull', '/jobs/:id', '/jobs/:id/events'], NEEDS_DATABASE),
  );
  return admin;
}
