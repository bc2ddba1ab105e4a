import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, type Job } from 'bullmq';
import type { Registry } from 'prom-client';
import {
  createLogger,
  createRedis,
  loadConfig,
  MODEL_PULLS_QUEUE,
  PULL_JOB_OPTIONS,
  pullJobId,
  pullQueuePrefix,
  type Pool,
  type PullJobData,
  type PullJobResult,
} from '@gguf-gateway/shared';
import { deleteRedisPrefix, LogCapture, testRedisPrefix, testSettings, waitFor } from '@gguf-gateway/testkit';
import { workerConfigSchema } from '../../src/config.js';
import { buildWorker } from '../../src/wiring.js';

export interface RunningWorker {
  queue: Queue<PullJobData, PullJobResult>;
  modelsDir: string;
  prefix: string;
  pool: Pool;
  registry: Registry;
  logs: LogCapture;
  enqueue(data: PullJobData): Promise<Job<PullJobData, PullJobResult>>;
  /** Waits for the job to complete or fail, and returns it with that state. */
  finished(jobId: string, timeoutMs?: number): Promise<{ state: string; job: Job<PullJobData, PullJobResult> }>;
  close(): Promise<void>;
}

/** A real pull worker in this process, on its own queue prefix and models dir, against real Redis and Postgres. */
export async function startWorker(env: Record<string, string>): Promise<RunningWorker> {
  const prefix = testRedisPrefix();
  const modelsDir = env.MODELS_DIR ?? (await mkdtemp(join(tmpdir(), 'gg-models-')));
  const config = loadConfig(workerConfigSchema, {
    REDIS_URL: testSettings.TEST_REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    PULL_PROGRESS_INTERVAL_MS: '100',
    ...env,
    MODELS_DIR: modelsDir,
  });
  const logs = new LogCapture();
  const logger = createLogger({ service: 'worker', level: 'debug', destination: logs });
  const { worker, redis, pool, registry } = buildWorker(config, { logger });
  const queue = new Queue<PullJobData, PullJobResult>(MODEL_PULLS_QUEUE, {
    connection: createRedis(config.REDIS_URL, 'worker'),
    prefix: pullQueuePrefix(prefix),
  });
  return {
    queue,
    modelsDir,
    prefix,
    pool,
    registry,
    logs,
    enqueue: (data) =>
      queue.add('pull', data, {
        ...PULL_JOB_OPTIONS,
        backoff: { type: 'fixed', delay: 200 },
        jobId: pullJobId(data.source),
      }),
    async finished(jobId, timeoutMs = 60_000) {
      return waitFor(
        `job ${jobId} to finish`,
        async () => {
          // State first, then the job: a job read before it finished would lack its result.
          const state = await queue.getJobState(jobId);
          if (state !== 'completed' && state !== 'failed') return null;
          return { state, job: (await queue.getJob(jobId))! };
        },
        timeoutMs,
        50,
      );
    },
    async close() {
      await worker.close(true);
      await queue.close();
      await (queue.opts.connection as ReturnType<typeof createRedis>).quit();
      await redis.quit();
      await pool.end();
      await deleteRedisPrefix(prefix);
      await rm(modelsDir, { recursive: true, force: true });
    },
  };
}
