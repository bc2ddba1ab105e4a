import { Router, json } from 'express';
import { notFound } from '@gguf-gateway/shared';
import type { ApiKeysService } from './api-keys.service.js';
import { authorizeRequestSchema, parseBody, renewRequestSchema, settleRequestSchema } from './auth.schemas.js';
import type { AuthorizeService } from './authorize.service.js';

/** The internal API the gateway calls (DESIGN.md, the auth <-> gateway contract). */
export function createAuthRouter(authorizer: AuthorizeService, keys: ApiKeysService): Router {
  const router = Router();
  router.use(json({ limit: '16kb' }));

  router.post('/v1/authorize', async (req, res) => {
    const { body, headers } = await authorizer.authorize(parseBody(authorizeRequestSchema, req.body));
    res.set(headers).json(body);
  });

  router.post('/v1/settle', async (req, res) => {
    await authorizer.settle(parseBody(settleRequestSchema, req.body));
    res.status(204).end();
  });

  router.post('/v1/renew', async (req, res) => {
    const { lease } = parseBody(renewRequestSchema, req.body);
    if (!(await authorizer.renew(lease)))
      throw notFound('No such lease: it was settled or has expired.', 'lease_not_found');
    res.status(204).end();
  });

  router.post('/v1/keys/reload', async (_req, res) => {
    const { keys: count, errors } = await keys.reload();
    res.json({ keys: count, errors: errors.map(({ line, message }) => ({ line, message })) });
  });

  return router;
}
