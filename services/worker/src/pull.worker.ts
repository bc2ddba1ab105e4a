import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  MODEL_PULLS_QUEUE,
  parsePullJobData,
  PullCancelMarks,
  pullFiles,
  pullQueuePrefix,
  type Logger,
  type Pool,
  type PullJobData,
} from '@gguf-gateway/shared';
import type { Registry } from 'prom-client';
import { AllowedHosts } from './allowed-hosts.js';
import type { WorkerConfig } from './config.js';
import { HubClient } from './hub.client.js';
import type { ModelFilesRepository } from './model-files.repository.js';
import { ModelPullService, PullCancelledError, type PullResult } from './model-pull.service.js';
import { ModelsRepository, type PullJobState } from './models.repository.js';
import { PullMetrics } from './pull.metrics.js';

export interface PullWorkerDeps {
  config: WorkerConfig;
  logger: Logger;
  pool: Pool;
  registry: Registry;
  /** A `worker` role connection (maxRetriesPerRequest null); the caller closes it after the worker. */
  redis: Redis;
  files: ModelFilesRepository;
}

function modelNameOf(data: unknown): string | null {
  try {
    return pullFiles(parsePullJobData(data))[0]!.name;
  } catch {
    return null;
  }
}

/** The BullMQ worker of the `model-pulls` queue: runs pulls, records each in pull_jobs, counts them. */
export function createPullWorker({
  config,
  logger,
  pool,
  registry,
  redis,
  files,
}: PullWorkerDeps): Worker<PullJobData, PullResult> {
  const metrics = new PullMetrics(registry);
  const models = new ModelsRepository(pool);
  const cancelMarks = new PullCancelMarks(redis, config.REDIS_KEY_PREFIX);
  const service = new ModelPullService({
    hub: new HubClient({
      endpoint: config.HF_ENDPOINT,
      token: config.HF_TOKEN,
      allowedHosts: new AllowedHosts(config.PULL_ALLOWED_HOSTS),
    }),
    files,
    models,
    logger,
    stallMs: config.PULL_STALL_TIMEOUT_MS,
    freeSpaceMarginBytes: config.PULL_FREE_SPACE_MARGIN_BYTES,
    progressIntervalMs: config.PULL_PROGRESS_INTERVAL_MS,
    onBytes: (bytes) => metrics.bytes.inc(bytes),
  });

  const processPull = async (job: Job<PullJobData, PullResult>): Promise<PullResult> => {
    const jobId = job.id!;
    const log = logger.child({ jobId });
    const started = Date.now();
    metrics.active.inc();
    let historyId: number | undefined;
    try {
      await files.prepare();
      historyId = await models.startPull(jobId, job.data?.source ?? {}, modelNameOf(job.data) ?? 'invalid');
      log.info({ source: job.data?.source, attempt: job.attemptsMade + 1 }, 'pull started');
      const result = await service.pull({
        id: jobId,
        data: job.data,
        progress: (progress) => job.updateProgress(progress),
        cancelled: () => cancelMarks.isSet(jobId),
      });
      await models.recordPull(historyId, {
        state: 'completed',
        bytesTotal: result.bytes,
        bytesDone: result.bytes,
        sha256: result.sha256,
      });
      metrics.jobs.inc({ result: 'completed' });
      metrics.duration.observe((Date.now() - started) / 1000);
      log.info({ name: result.name, bytes: result.bytes, alreadyPresent: result.alreadyPresent }, 'pull completed');
      return result;
    } catch (err) {
      const cancelled = err instanceof PullCancelledError;
      const final = err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      const state: PullJobState = cancelled ? 'cancelled' : final ? 'failed' : 'queued';
      if (historyId !== undefined) {
        // History is best effort here: the job's own failure is what must reach BullMQ.
        await models
          .recordPull(historyId, { state, error: (err as Error).message })
          .catch((dbErr: unknown) => log.error({ err: dbErr }, 'could not record the pull in pull_jobs'));
      }
      if (final) metrics.jobs.inc({ result: cancelled ? 'cancelled' : 'failed' });
      log.warn({ state, reason: (err as Error).message }, final ? 'pull ended' : 'pull failed, will retry');
      throw err;
    } finally {
      metrics.active.dec();
    }
  };

  const worker = new Worker<PullJobData, PullResult>(MODEL_PULLS_QUEUE, processPull, {
    connection: redis,
    prefix: pullQueuePrefix(config.REDIS_KEY_PREFIX),
    concurrency: config.PULL_CONCURRENCY,
    lockDuration: config.PULL_LOCK_MS,
    stalledInterval: config.PULL_LOCK_MS,
    // A worker killed mid-download leaves the job stalled; another worker takes it and resumes.
    maxStalledCount: 3,
  });
  worker.on('error', (err) => logger.error({ err }, 'pull worker error'));
  return worker;
}
