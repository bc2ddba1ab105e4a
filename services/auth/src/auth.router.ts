import { Router, json } from 'express';
import { notFound } from '@gguf-gateway/shared';
import type { ApiKeysService } from './api-keys.service.js';
import {
  authorizeRequestSchema,
  identifyRequestSchema,
  parseBody,
  renewRequestSchema,
  settleRequestSchema,
} from './auth.schemas.js';
import type { AuthorizeService } from './authorize.service.js';
import { requireInternalToken } from './internal-token.js';

const INTERNAL_PATHS = ['/v1/authorize', '/v1/identify', '/v1/settle', '/v1/renew', '/v1/keys/reload'];

/** The internal API the gateway calls (DESIGN.md, the auth <-> gateway contract). */
export function createAuthRouter(authorizer: AuthorizeService, keys: ApiKeysService, internalToken: string): Router {
  const router = Router();
  // The token is checked before a byte of the body is parsed.
  router.use(INTERNAL_PATHS, requireInternalToken(internalToken), json({ limit: '16kb' }));

  router.post('/v1/authorize', async (req, res) => {
    const { body, headers } = await authorizer.authorize(parseBody(authorizeRequestSchema, req.body));
    res.set(headers).json(body);
  });

  router.post('/v1/identify', async (req, res) => {
    res.json(await authorizer.identify(parseBody(identifyRequestSchema, req.body)));
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
