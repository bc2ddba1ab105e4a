import { Queue, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { MODEL_PULLS_QUEUE, pullJobId, type PullJobData, type PullProgress, type PullSource } from './contracts.js';
import {
  PULL_CANCEL_TTL_SEC,
  PULL_JOB_OPTIONS,
  pullCancelKey,
  pullQueuePrefix,
  redactedSource,
  type PullJobResult,
} from './pull-request.js';
import { createRedis } from './redis.js';

export type PullJob = Job<PullJobData, PullJobResult>;

export type PullJobStatus = 'waiting' | 'active' | 'delayed' | 'completed' | 'failed' | 'cancelled';

export const FINISHED_PULL_STATES: readonly PullJobStatus[] = ['completed', 'failed', 'cancelled'];

/** A pull job as the admin API and the model gate see it. */
export interface PullJobView {
  id: string;
  state: PullJobStatus;
  source: PullSource;
  name: string | null;
  sha256: string | null;
  progress: PullProgress | null;
  /** Attempts made so far, and how many the job may make in all. */
  attempts: number;
  maxAttempts: number;
  /** The last failed attempt's reason, also while the worker retries it. */
  lastError: string | null;
  cancelRequested: boolean;
  error: string | null;
  result: PullJobResult | null;
  createdAt: string;
  finishedAt: string | null;
}

/** The pull is being cancelled while a worker runs it: a new pull of it must wait until it stops. */
export class PullCancellingError extends Error {
  constructor(readonly jobId: string) {
    super(`Job ${jobId} is being cancelled; pull again once it has stopped.`);
    this.name = 'PullCancellingError';
  }
}

/** The worker fails a cancelled job with exactly this reason. */
const CANCELLED_REASON = 'cancelled';

function isProgress(value: unknown): value is PullProgress {
  return typeof value === 'object' && value !== null && 'phase' in value;
}

/**
 * Cancel marks: a producer sets one, the worker (which owns the files) reads it between chunks,
 * stops the job and removes its partial file. A new pull of the same source clears it.
 */
export class PullCancelMarks {
  constructor(
    private readonly redis: Redis,
    private readonly redisKeyPrefix: string,
  ) {}

  async set(jobId: string): Promise<void> {
    await this.redis.set(pullCancelKey(this.redisKeyPrefix, jobId), '1', 'EX', PULL_CANCEL_TTL_SEC);
  }

  async clear(jobId: string): Promise<void> {
    await this.redis.del(pullCancelKey(this.redisKeyPrefix, jobId));
  }

  async isSet(jobId: string): Promise<boolean> {
    return (await this.redis.exists(pullCancelKey(this.redisKeyPrefix, jobId))) === 1;
  }
}

/**
 * The producer side of the `model-pulls` queue, the only one: the admin API, the orchestrator's
 * model gate and the bench all enqueue, view and cancel through it, so they agree on job ids,
 * options and cancel marks.
 */
export class PullQueue {
  private readonly queue: Queue<PullJobData, PullJobResult>;
  private readonly marks: PullCancelMarks;

  /**
   * `redis` is the caller's: on the request path a `request-path` connection fails a request at once
   * when Redis is away instead of hanging it. `onError` hears the queue's errors, its connection's included.
   */
  constructor(
    redis: Redis,
    redisKeyPrefix: string,
    onError: (err: Error) => void,
    private readonly ownedConnection: Redis | null = null,
  ) {
    // A caller's request-path connection fails fast, so the queue must not wait for it to be ready
    // (a request would hang while Redis is away) nor ask Redis its version at start (an INFO lost to
    // a blip would break the queue for good). The worker's own connection checks the version.
    const failFast = ownedConnection === null;
    this.queue = new Queue(MODEL_PULLS_QUEUE, {
      connection: redis,
      prefix: pullQueuePrefix(redisKeyPrefix),
      skipWaitingForReady: failFast,
      skipVersionCheck: failFast,
    });
    this.queue.on('error', onError);
    this.marks = new PullCancelMarks(redis, redisKeyPrefix);
  }

  /** A queue on a connection of its own that retries while Redis is away (a gate that waits for hours). */
  static connect(redisUrl: string, redisKeyPrefix: string, onError: (err: Error) => void): PullQueue {
    const redis = createRedis(redisUrl, 'worker');
    // The queue passes its connection's errors on to onError: hearing them here too would say each twice.
    redis.on('error', () => undefined);
    return new PullQueue(redis, redisKeyPrefix, onError, redis);
  }

  /**
   * Adds the pull under its source-derived id, so every producer shares one job. A job already
   * waiting or running is returned as it is (deduplicated). A finished one, or one still waiting
   * with a cancel mark (this request wants the model after all), is replaced by a fresh attempt
   * whose cancel mark is cleared. Throws PullCancellingError while a cancelled job still runs.
   */
  async enqueue(data: PullJobData): Promise<{ job: PullJob; deduplicated: boolean }> {
    const jobId = pullJobId(data.source);
    const existing = await this.find(jobId);
    if (existing) {
      const state = await existing.getState();
      const finished = state === 'completed' || state === 'failed';
      const cancelling = !finished && (await this.marks.isSet(jobId));
      if (!finished && !cancelling) return { job: existing, deduplicated: true };
      if (cancelling && state === 'active') throw new PullCancellingError(jobId);
      // A finished job keeps its id for a day; a new pull of the same source takes its place.
      await existing.remove().catch(() => {
        // A worker took the waiting job meanwhile: it will now stop as cancelled.
        throw new PullCancellingError(jobId);
      });
    }
    await this.marks.clear(jobId);
    return { job: await this.queue.add('pull', data, { ...PULL_JOB_OPTIONS, jobId }), deduplicated: false };
  }

  async find(jobId: string): Promise<PullJob | null> {
    return (await this.queue.getJob(jobId)) ?? null;
  }

  /** The job's view, or null when there is no job with that id (never pulled, or expired). */
  async viewOf(jobId: string): Promise<PullJobView | null> {
    const job = await this.find(jobId);
    return job ? this.view(job) : null;
  }

  async view(job: PullJob): Promise<PullJobView> {
    const raw = await job.getState();
    const state: PullJobStatus =
      raw === 'failed' && job.failedReason === CANCELLED_REASON
        ? 'cancelled'
        : raw === 'completed' || raw === 'failed' || raw === 'active' || raw === 'delayed'
          ? raw
          : 'waiting';
    return {
      id: job.id!,
      state,
      // A presigned URL's signature is a credential: the view (admin API, logs) never shows it.
      source: redactedSource(job.data.source),
      name: job.data.name ?? null,
      sha256: job.data.sha256 ?? null,
      progress: isProgress(job.progress) ? job.progress : null,
      attempts: job.attemptsMade,
      maxAttempts: job.opts.attempts ?? 1,
      lastError: job.failedReason ?? null,
      cancelRequested: await this.marks.isSet(job.id!),
      error: state === 'failed' ? job.failedReason : null,
      result: state === 'completed' ? job.returnvalue : null,
      createdAt: new Date(job.timestamp).toISOString(),
      finishedAt: job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
    };
  }

  /** Marks the job cancelled; the worker stops it and removes its partial file. */
  async requestCancel(job: PullJob): Promise<void> {
    await this.marks.set(job.id!);
    // A job waiting out a retry backoff would not see the mark until then: run it now.
    if ((await job.getState()) === 'delayed') await job.promote();
  }

  isCancelled(jobId: string): Promise<boolean> {
    return this.marks.isSet(jobId);
  }

  async close(): Promise<void> {
    await this.queue.close();
    if (this.ownedConnection) await this.ownedConnection.quit().catch(() => this.ownedConnection?.disconnect());
  }
}
