import express, { type Express } from 'express';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import {
  createHealthRouter,
  errorMiddleware,
  notFoundHandler,
  requestIdMiddleware,
  type Logger,
} from '@gguf-gateway/shared';
import type { ApiKeysService } from './api-keys.service.js';
import { createAuthRouter } from './auth.router.js';
import type { AuthorizeService } from './authorize.service.js';
import { createReadinessRouter } from './readiness.router.js';

export interface AuthAppDeps {
  logger: Logger;
  registry: Registry;
  redis: Redis;
  keys: ApiKeysService;
  authorizer: AuthorizeService;
  /** AUTH_INTERNAL_TOKEN: what the decision endpoints require of their caller. */
  internalToken: string;
}

/** The auth service: answers whether a request may run (keys, limits, quotas). */
export function createApp({ logger, registry, redis, keys, authorizer, internalToken }: AuthAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(requestIdMiddleware);
  app.use(createReadinessRouter(keys, redis));
  app.use(createHealthRouter({ checks: {}, registry }));
  app.use(createAuthRouter(authorizer, keys, internalToken));
  app.use(notFoundHandler);
  app.use(errorMiddleware(logger));
  return app;
}
