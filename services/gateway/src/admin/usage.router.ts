import { Router } from 'express';
import type { UsageService } from './usage.service.js';

export interface UsageRouterDeps {
  usage: UsageService;
}

/** `GET /usage?key=&model=&from=&to=` (mounted under /admin/v1): totals, and per key and model. */
export function createUsageRouter({ usage }: UsageRouterDeps): Router {
  const router = Router();
  router.get('/usage', async (req, res) => {
    res.json(await usage.totals(req.query as Record<string, unknown>));
  });
  return router;
}
