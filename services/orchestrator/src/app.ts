import express, { type Express } from 'express';
import type { Registry } from 'prom-client';
import {
  createHealthRouter,
  errorMiddleware,
  notFoundHandler,
  requestIdMiddleware,
  type Logger,
  type ReadinessCheck,
} from '@gguf-gateway/shared';

export interface OrchestratorAppDeps {
  logger: Logger;
  registry: Registry;
  readiness: Record<string, ReadinessCheck>;
}

/** The orchestrator's /status of every readiness gate. */
export function createApp({ logger, registry, readiness }: OrchestratorAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(requestIdMiddleware);
  app.use(createHealthRouter({ checks: readiness, registry }));
  app.use(notFoundHandler);
  app.use(errorMiddleware(logger));
  return app;
}
