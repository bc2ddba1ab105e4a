import type { Server } from 'node:http';
import type { Worker } from 'bullmq';
import type { Express } from 'express';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import {
  closeServer,
  createLogger,
  createMetricsRegistry,
  createPgPool,
  createRedis,
  postgresProblem,
  redisProblem,
  type Logger,
  type Pool,
  type PullJobData,
  type ShutdownStep,
} from '@gguf-gateway/shared';
import { createApp } from './app.js';
import type { WorkerConfig } from './config.js';
import { ModelFilesRepository } from './model-files.repository.js';
import type { PullResult } from './model-pull.service.js';
import { createPullWorker } from './pull.worker.js';

export interface WorkerParts {
  app: Express;
  worker: Worker<PullJobData, PullResult>;
  files: ModelFilesRepository;
  logger: Logger;
  registry: Registry;
  redis: Redis;
  pool: Pool;
  /** Everything to close on shutdown, in order, after the health server `server`. */
  closeSteps(server: Server): ShutdownStep[];
}

/** The worker's one composition root: main.ts and the tests build it here. */
export function buildWorker(config: WorkerConfig, overrides: { logger?: Logger } = {}): WorkerParts {
  const logger = overrides.logger ?? createLogger({ service: 'worker', level: config.LOG_LEVEL });
  const redis = createRedis(config.REDIS_URL, 'worker');
  redis.on('error', (err) => logger.warn({ err }, 'redis error'));
  const pool = createPgPool(config.DATABASE_URL, 4);
  const registry = createMetricsRegistry('worker');
  const files = new ModelFilesRepository(config.MODELS_DIR);
  const worker = createPullWorker({ config, logger, pool, registry, redis, files });
  const app = createApp({
    logger,
    registry,
    readiness: {
      redis: () => redisProblem(redis),
      postgres: () => postgresProblem(pool),
      modelsDir: () => files.writableProblem(),
    },
  });
  return {
    app,
    worker,
    files,
    logger,
    registry,
    redis,
    pool,
    closeSteps: (server) => [
      { name: 'http', close: () => closeServer(server) },
      // Not waiting for a pull of many GB: the job's lock lapses and the next worker resumes its partial file.
      { name: 'pull worker', close: () => worker.close(true) },
      { name: 'redis', close: () => redis.quit() },
      { name: 'postgres', close: () => pool.end() },
    ],
  };
}
