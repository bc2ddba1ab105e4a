import type { Express } from 'express';
import type { Registry } from 'prom-client';
import { createServiceApp, type Logger, type ReadinessCheck } from '@gguf-gateway/shared';

export interface WorkerAppDeps {
  logger: Logger;
  registry: Registry;
  readiness: Record<string, ReadinessCheck>;
}

/** The pull worker's HTTP side: health and metrics only; the work happens on the queue. */
export function createApp({ logger, registry, readiness }: WorkerAppDeps): Express {
  return createServiceApp({ logger, registry, checks: readiness });
}
