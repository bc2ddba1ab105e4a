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

export interface MetricsAppDeps {
  logger: Logger;
  registry: Registry;
  readiness: Record<string, ReadinessCheck>;
  /** Problems that leave the service serving: readiness says `degraded`. */
  degradedBy?: Record<string, ReadinessCheck>;
}

/** The metrics service: usage stream consumer status and Prometheus business metrics. */
export function createApp({ logger, registry, readiness, degradedBy }: MetricsAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(requestIdMiddleware);
  app.use(createHealthRouter({ checks: readiness, degradedBy, registry }));
  app.use(notFoundHandler);
  app.use(errorMiddleware(logger));
  return app;
}
