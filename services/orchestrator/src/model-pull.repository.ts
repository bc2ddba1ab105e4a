import { Queue } from 'bullmq';
import {
  createRedis,
  MODEL_PULLS_QUEUE,
  PULL_JOB_OPTIONS,
  pullJobId,
  pullQueuePrefix,
  type PullJobData,
  type PullProgress,
} from '@gguf-gateway/shared';

export type PullState = 'waiting' | 'active' | 'delayed' | 'completed' | 'failed' | 'unknown';

export interface PullStatus {
  state: PullState;
  progress: PullProgress | null;
  failedReason: string | null;
  /** Attempts that failed so far, and how many the job may make in all. */
  attemptsMade: number;
  attempts: number;
  /** Where the worker put the file, when its result says so. */
  path: string | null;
}

/** Enqueues model pulls on the worker's queue and reads their progress. */
export class ModelPullRepository {
  private readonly redis;
  private readonly queue: Queue<PullJobData>;

  constructor(redisUrl: string, redisKeyPrefix: string) {
    this.redis = createRedis(redisUrl, 'worker');
    this.redis.on('error', () => undefined);
    this.queue = new Queue<PullJobData>(MODEL_PULLS_QUEUE, {
      connection: this.redis,
      prefix: pullQueuePrefix(redisKeyPrefix),
    });
    this.queue.on('error', () => undefined);
  }

  /**
   * Adds the pull under its source-derived id, so the admin API and the orchestrator share one job.
   * A finished job whose file is gone since (or a failed one) is replaced by a fresh attempt.
   */
  async enqueue(data: PullJobData): Promise<string> {
    const jobId = pullJobId(data.source);
    const existing = await this.queue.getJob(jobId);
    if (existing) {
      const state = await existing.getState();
      if (state !== 'completed' && state !== 'failed') return jobId;
      await existing.remove();
    }
    await this.queue.add('pull', data, { ...PULL_JOB_OPTIONS, jobId });
    return jobId;
  }

  async status(jobId: string): Promise<PullStatus> {
    const job = await this.queue.getJob(jobId);
    if (!job) {
      return {
        state: 'unknown',
        progress: null,
        failedReason: 'the job disappeared',
        attemptsMade: 0,
        attempts: 0,
        path: null,
      };
    }
    const state = (await job.getState()) as PullState;
    const progress = typeof job.progress === 'object' ? (job.progress as unknown as PullProgress) : null;
    const result = job.returnvalue as { path?: unknown } | null;
    return {
      state,
      progress,
      failedReason: job.failedReason ?? null,
      attemptsMade: job.attemptsMade,
      attempts: job.opts.attempts ?? 1,
      path: typeof result?.path === 'string' ? result.path : null,
    };
  }

  async close(): Promise<void> {
    await this.queue.close();
    this.redis.disconnect();
  }
}
