import { Router } from 'express';
import type { Redis } from 'ioredis';
import { redisProblem } from '@gguf-gateway/shared';
import type { ApiKeysService } from './api-keys.service.js';

/**
 * `/readyz` for auth: ready with keys loaded and Redis up; still ready but `degraded` while the
 * insurance limiter serves, the keys file has bad lines, or it cannot be read (the last good keys
 * serve for KEYS_FILE_GRACE_MS); not ready with no key loaded at all.
 */
export function createReadinessRouter(keys: ApiKeysService, redis: Redis): Router {
  const router = Router();
  router.get('/readyz', async (_req, res) => {
    const redisIssue = await redisProblem(redis);
    const checks = {
      keys: keys.problem() ?? `ok (${keys.count} keys)`,
      redis: redisIssue
        ? `degraded: ${redisIssue}; the in-memory insurance limiter serves (limits per instance)`
        : 'ok',
    };
    const status = keys.count === 0 ? 'not_ready' : redisIssue || keys.problem() ? 'degraded' : 'ready';
    res.status(status === 'not_ready' ? 503 : 200).json({ status, checks });
  });
  return router;
}
