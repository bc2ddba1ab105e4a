import type { Express } from 'express';
import type { Registry } from 'prom-client';
import { createServiceApp, type Logger, type ReadinessCheck } from '@gguf-gateway/shared';

export interface MetricsAppDeps {
  logger: Logger;
  registry: Registry;
  readiness: Record<string, ReadinessCheck>;
  /** Problems that leave the service serving: readiness says `degraded`. */
  degradedBy?: Record<string, ReadinessCheck>;
}

/** The metrics service: usage stream consumer status and Prometheus business metrics. */
export function createApp({ logger, registry, readiness, degradedBy }: MetricsAppDeps): Express {
  return createServiceApp({ logger, registry, checks: readiness, degradedBy });
}
