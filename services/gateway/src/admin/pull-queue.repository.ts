import { Queue, type Job, type JobState } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  MODEL_PULLS_QUEUE,
  PULL_CANCEL_TTL_SEC,
  PULL_JOB_OPTIONS,
  pullCancelKey,
  pullQueuePrefix,
  type PullJobData,
  type PullJobResult,
} from '@gguf-gateway/shared';

export type PullJob = Job<PullJobData, PullJobResult>;

/**
 * The producer side of the `model-pulls` queue. Its Redis connection is a request-path one
 * (`enableOfflineQueue: false`), so a Redis outage fails the request at once instead of hanging it.
 */
export class PullQueueRepository {
  private readonly queue: Queue<PullJobData, PullJobResult>;

  constructor(
    private readonly redis: Redis,
    private readonly redisKeyPrefix: string,
  ) {
    this.queue = new Queue(MODEL_PULLS_QUEUE, { connection: redis, prefix: pullQueuePrefix(redisKeyPrefix) });
  }

  async find(jobId: string): Promise<PullJob | null> {
    return (await this.queue.getJob(jobId)) ?? null;
  }

  stateOf(job: PullJob): Promise<JobState | 'unknown'> {
    return job.getState();
  }

  /** BullMQ keeps one job per id: adding an id that is already queued or running returns that job. */
  async add(jobId: string, data: PullJobData): Promise<PullJob> {
    await this.redis.del(pullCancelKey(this.redisKeyPrefix, jobId));
    return this.queue.add('pull', data, { ...PULL_JOB_OPTIONS, jobId });
  }

  async remove(job: PullJob): Promise<void> {
    await job.remove();
  }

  /** Marks the job cancelled; the worker, which owns the files, stops it and removes its partial file. */
  async requestCancel(job: PullJob): Promise<void> {
    await this.redis.set(pullCancelKey(this.redisKeyPrefix, job.id!), '1', 'EX', PULL_CANCEL_TTL_SEC);
    // A job waiting out a retry backoff would not see the mark until then: run it now.
    if ((await job.getState()) === 'delayed') await job.promote();
  }

  async cancelRequested(jobId: string): Promise<boolean> {
    return (await this.redis.exists(pullCancelKey(this.redisKeyPrefix, jobId))) === 1;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
