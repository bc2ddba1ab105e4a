import express, { type Express, type RequestHandler } from 'express';
import type { Registry } from 'prom-client';
import { errorMiddleware, notFoundHandler } from './errors.js';
import { createHealthRouter, type HealthOptions, type ReadinessCheck } from './health.js';
import type { Logger } from './logger.js';
import { requestIdMiddleware } from './request-id.js';

export interface ServiceAppOptions {
  logger: Logger;
  registry: Registry;
  /** What must pass for /readyz to say ready. */
  checks: Record<string, ReadinessCheck>;
  /** What leaves the service serving but `degraded` (still 200). */
  degradedBy?: Record<string, ReadinessCheck>;
  /** The service's own routes, after the health routes. */
  routes?: RequestHandler[];
  /** Before the request id (answers that must cost nothing, such as load-balancer probes). */
  first?: RequestHandler[];
  /** After the request id, before the health routes (request log, security headers, CORS). */
  middlewares?: RequestHandler[];
  /** How the health routes show themselves on a published port. */
  health?: Pick<HealthOptions, 'public' | 'metricsGuard'>;
  /** X-Forwarded-For hops to trust for the client IP (0: the socket address). */
  trustProxyHops?: number;
}

/**
 * Every service's HTTP skeleton: request id, `/healthz`, `/readyz` and `/metrics`, the service's
 * routes, then one JSON 404 and one error handler, so that every service answers errors alike.
 */
export function createServiceApp(options: ServiceAppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('trust proxy', options.trustProxyHops ?? 0);
  for (const handler of options.first ?? []) app.use(handler);
  app.use(requestIdMiddleware);
  for (const handler of options.middlewares ?? []) app.use(handler);
  app.use(
    createHealthRouter({
      checks: options.checks,
      degradedBy: options.degradedBy,
      registry: options.registry,
      ...options.health,
    }),
  );
  for (const handler of options.routes ?? []) app.use(handler);
  app.use(notFoundHandler);
  app.use(errorMiddleware(options.logger));
  return app;
}
