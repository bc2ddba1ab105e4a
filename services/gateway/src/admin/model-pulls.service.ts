import {
  ApiError,
  InvalidPullError,
  badRequest,
  notFound,
  parsePullJobData,
  pullJobId,
  redactedSource,
  serviceUnavailable,
  type PullJobResult,
  type PullProgress,
  type PullSource,
} from '@gguf-gateway/shared';
import type { LocalModel, LocalModelsRepository } from './local-models.repository.js';
import type { PullJob, PullQueueRepository } from './pull-queue.repository.js';

export type PullJobStatus = 'waiting' | 'active' | 'delayed' | 'completed' | 'failed' | 'cancelled';

export interface PullJobView {
  id: string;
  state: PullJobStatus;
  source: PullSource;
  name: string | null;
  sha256: string | null;
  progress: PullProgress | null;
  attempts: number;
  cancelRequested: boolean;
  error: string | null;
  result: PullJobResult | null;
  createdAt: string;
  finishedAt: string | null;
}

export const FINISHED: readonly PullJobStatus[] = ['completed', 'failed', 'cancelled'];

/** The worker fails a cancelled job with exactly this reason. */
const CANCELLED_REASON = 'cancelled';

function isProgress(value: unknown): value is PullProgress {
  return typeof value === 'object' && value !== null && 'phase' in value;
}

/** Redis or Postgres away is a 503 the client may retry, not a 500. */
async function dependency<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw serviceUnavailable(`${what} is unavailable; try again shortly`, 5);
  }
}

function cancellingConflict(jobId: string): ApiError {
  return new ApiError(409, `Job ${jobId} is being cancelled; pull again once it has stopped.`, {
    code: 'job_cancelling',
  });
}

/** Admin pulls: enqueue (deduped by source), inspect, cancel, and the list of local models. */
export class ModelPullsService {
  constructor(
    private readonly queue: PullQueueRepository,
    private readonly models: LocalModelsRepository,
  ) {}

  async enqueue(body: unknown): Promise<{ view: PullJobView; deduplicated: boolean }> {
    let data;
    try {
      data = parsePullJobData(body);
    } catch (err) {
      if (err instanceof InvalidPullError) throw badRequest(err.message, err.param, 'invalid_pull');
      throw err;
    }
    const jobId = pullJobId(data.source);
    return dependency('the job queue', async () => {
      const existing = await this.queue.find(jobId);
      if (existing) {
        const state = await this.queue.stateOf(existing);
        const finished = state === 'completed' || state === 'failed';
        const cancelling = !finished && (await this.queue.cancelRequested(jobId));
        if (!finished && !cancelling) return { view: await this.view(existing), deduplicated: true };
        if (cancelling && state === 'active') throw cancellingConflict(jobId);
        // A finished job keeps its id for a day; a new pull of the same source replaces it. So does
        // one still waiting with a cancel mark: this request wants the model after all.
        await this.queue.remove(existing).catch(() => {
          // A worker took the waiting job meanwhile: it will now stop as cancelled.
          throw cancellingConflict(jobId);
        });
      }
      return { view: await this.view(await this.queue.add(jobId, data)), deduplicated: false };
    });
  }

  async job(id: string): Promise<PullJobView> {
    return dependency('the job queue', async () => this.view(await this.found(id)));
  }

  async cancel(id: string): Promise<PullJobView> {
    return dependency('the job queue', async () => {
      const job = await this.found(id);
      const view = await this.view(job);
      if (FINISHED.includes(view.state)) {
        throw new ApiError(
          409,
          `Job ${id} has already ${view.state === 'cancelled' ? 'been cancelled' : view.state}.`,
          {
            code: 'job_finished',
          },
        );
      }
      await this.queue.requestCancel(job);
      return { ...view, cancelRequested: true };
    });
  }

  async listModels(): Promise<LocalModel[]> {
    return dependency('the models database', () => this.models.list());
  }

  private async found(id: string): Promise<PullJob> {
    const job = await this.queue.find(id);
    if (!job) throw notFound(`No pull job with id ${id}.`, 'job_not_found');
    return job;
  }

  private async view(job: PullJob): Promise<PullJobView> {
    const raw = await this.queue.stateOf(job);
    const state: PullJobStatus =
      raw === 'failed' && job.failedReason === CANCELLED_REASON
        ? 'cancelled'
        : raw === 'completed' || raw === 'failed' || raw === 'active' || raw === 'delayed'
          ? raw
          : 'waiting';
    return {
      id: job.id!,
      state,
      source: redactedSource(job.data.source),
      name: job.data.name ?? null,
      sha256: job.data.sha256 ?? null,
      progress: isProgress(job.progress) ? job.progress : null,
      attempts: job.attemptsMade,
      cancelRequested: await this.queue.cancelRequested(job.id!),
      error: state === 'failed' ? job.failedReason : null,
      result: state === 'completed' ? job.returnvalue : null,
      createdAt: new Date(job.timestamp).toISOString(),
      finishedAt: job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
    };
  }
}
