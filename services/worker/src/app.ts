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

export interface WorkerAppDeps {
  logger: Logger;
  registry: Registry;
  readiness: Record<string, ReadinessCheck>;
}

/** The pull worker's HTTP side: health and metrics only; the work happens on the queue. */
export function createApp({ logger, registry, readiness }: WorkerAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(requestIdMiddleware);
  app.use(createHealthRouter({ checks: readiness, registry }));
  app.use(notFoundHandler);
  app.use(errorMiddleware(logger));
  return app;
}
