import { Router, type RequestHandler } from 'express';
import type { Registry } from 'prom-client';
import { checkReadiness, type ReadinessCheck } from '@gguf-gateway/shared';

export interface PublicHealthDeps {
  readiness: Record<string, ReadinessCheck>;
  degradedBy?: Record<string, ReadinessCheck>;
  registry: Registry;
  /** Lets only admin keys through: the API port's `/metrics` needs one. */
  requireAdmin: RequestHandler;
}

/**
 * Health on the published API port: `/healthz` and `/readyz` with its status only (`/ping` and
 * `/health` are answered before any middleware, by `answerProbe` in ping.server.ts). Which check
 * fails, and `/metrics`, are on PORT_HEALTH; the API port serves `/metrics` only to an admin key,
 * for scrapers that can reach nothing else.
 */
export function createPublicHealthRouter(deps: PublicHealthDeps): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const { ready, status } = await checkReadiness(deps.readiness, 2000, deps.degradedBy);
    res.status(ready ? 200 : 503).json({ status });
  });
  router.get('/metrics', deps.requireAdmin, async (_req, res) => {
    res.set('Content-Type', deps.registry.contentType).send(await deps.registry.metrics());
  });
  return router;
}
