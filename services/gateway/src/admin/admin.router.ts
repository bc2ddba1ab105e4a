import { Router, type RequestHandler } from 'express';
import { ApiError } from '@gguf-gateway/shared';
import type { AuthClient } from '../authorization/auth.client.js';
import type { RequestAuthorizer } from '../authorization/request-authorizer.js';
import { closeIfBodyUnread } from '../authorization/key-check.middleware.js';
import { jsonBody } from '../http/json-body.middleware.js';

export interface AdminRouterDeps {
  auth: AuthClient;
  authorizer: RequestAuthorizer;
  bodyLimitBytes: number;
  jsonMaxDepth: number;
  /** Handlers of other issues (model pulls, usage), mounted after the admin check. */
  extraRouters: Router[];
}

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

export function createAdminRouter(deps: AdminRouterDeps): Router {
  const { auth, authorizer, extraRouters } = deps;
  const admin = Router();
  admin.use(requireAdmin(authorizer));
  admin.use(jsonBody(deps.bodyLimitBytes, deps.jsonMaxDepth));
  admin.post('/keys/reload', async (_req, res) => {
    res.json(await auth.reloadKeys(res.getHeader('x-request-id') as string));
  });
  for (const router of extraRouters) admin.use(router);
  return admin;
}
