import { Router, json } from 'express';
import {
  badRequest,
  notFound,
  type AuthorizeRequest,
  type AuthorizedRoute,
  type IdentifyRequest,
  type SettleRequest,
} from '@gguf-gateway/shared';
import type { ApiKeysService } from './api-keys.service.js';
import type { AuthorizeService } from './authorize.service.js';

const ROUTES = new Set<AuthorizedRoute>(['chat', 'completions', 'embeddings', 'models', 'admin']);

type Body = Record<string, unknown>;

function text(body: Body, name: string, allowEmpty = true): string {
  const value = body[name];
  if (typeof value !== 'string' || (!allowEmpty && value === '')) throw badRequest(`'${name}' must be a string.`, name);
  return value;
}

function tokens(body: Body, name: string): number {
  const value = body[name];
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw badRequest(`'${name}' must be a whole number of tokens.`, name);
  }
  return value as number;
}

function authorizeRequest(body: Body): AuthorizeRequest {
  const route = text(body, 'route') as AuthorizedRoute;
  if (!ROUTES.has(route)) throw badRequest(`'route' must be one of ${[...ROUTES].join(', ')}.`, 'route');
  const model = body.model ?? null;
  if (model !== null && typeof model !== 'string') throw badRequest("'model' must be a string or null.", 'model');
  return { key: text(body, 'key'), model, route, ip: text(body, 'ip') };
}

function identifyRequest(body: Body): IdentifyRequest {
  return { key: text(body, 'key'), ip: text(body, 'ip') };
}

function settleRequest(body: Body): SettleRequest {
  return {
    lease: text(body, 'lease', false),
    promptTokens: tokens(body, 'promptTokens'),
    completionTokens: tokens(body, 'completionTokens'),
  };
}

/** The internal API the gateway calls (DESIGN.md, the auth <-> gateway contract). */
export function createAuthRouter(authorizer: AuthorizeService, keys: ApiKeysService): Router {
  const router = Router();
  router.use(json({ limit: '16kb' }));

  router.post('/v1/authorize', async (req, res) => {
    const { body, headers } = await authorizer.authorize(authorizeRequest((req.body ?? {}) as Body));
    res.set(headers).json(body);
  });

  router.post('/v1/identify', async (req, res) => {
    res.json(await authorizer.identify(identifyRequest((req.body ?? {}) as Body)));
  });

  router.post('/v1/settle', async (req, res) => {
    await authorizer.settle(settleRequest((req.body ?? {}) as Body));
    res.status(204).end();
  });

  router.post('/v1/renew', async (req, res) => {
    const lease = text((req.body ?? {}) as Body, 'lease', false);
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
