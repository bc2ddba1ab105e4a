import type { Express } from 'express';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { createServiceApp, redisProblem, type Logger } from '@gguf-gateway/shared';
import type { ApiKeysService } from './api-keys.service.js';
import { createAuthRouter } from './auth.router.js';
import type { AuthorizeService } from './authorize.service.js';

export interface AuthAppDeps {
  logger: Logger;
  registry: Registry;
  redis: Redis;
  keys: ApiKeysService;
  authorizer: AuthorizeService;
  /** AUTH_INTERNAL_TOKEN: what the decision endpoints require of their caller. */
  internalToken: string;
}

/**
 * The auth service: answers whether a request may run (keys, limits, quotas). Ready with keys
 * loaded; still ready but `degraded` while the insurance limiter serves, the keys file has bad lines,
 * or it cannot be read (the last good keys serve for KEYS_FILE_GRACE_MS); not ready with no key.
 */
export function createApp({ logger, registry, redis, keys, authorizer, internalToken }: AuthAppDeps): Express {
  return createServiceApp({
    logger,
    registry,
    checks: {
      keys: () => (keys.count === 0 ? (keys.problem() ?? 'no API keys are loaded') : { ok: `ok (${keys.count} keys)` }),
    },
    degradedBy: {
      keys: () => keys.problem(),
      redis: async () => {
        const problem = await redisProblem(redis);
        return problem && `degraded: ${problem}; the in-memory insurance limiter serves (limits per instance)`;
      },
    },
    routes: [createAuthRouter(authorizer, keys, internalToken)],
  });
}
